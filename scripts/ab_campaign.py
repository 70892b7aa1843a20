"""Run the A/B gate N times (separate pytest processes) and count its verdicts: how often
an A/A run false-alarms on this host, and how often a planted slowdown is caught.

    python scripts/ab_campaign.py --runs 20 --spec same --out /tmp/aa
    python scripts/ab_campaign.py --runs 10 --spec same:slowdown=0.05 --out /tmp/s5
    python scripts/ab_campaign.py --plan 20*same 10*same:slowdown=0.05 --out /tmp/mix

Each run is `pytest suite -m "perf and not gpu and not slow" --infer-ab SPEC`: the whole
default set (`same` is each benchmark's own engine: transformers, the speech adapter, the
llama.cpp server). `--plan` runs several specs in one seeded random order, so A/A and
planted runs meet the same hours of the host; `--only K` keeps benchmarks matching -k K.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SELECT = ["suite", "-m", "perf and not gpu and not slow"]


def parse_plan(args: argparse.Namespace) -> list[str]:
    """The runs' specs in the order they run: --spec repeated --runs times, or --plan's
    N*SPEC entries shuffled with a fixed seed."""
    if args.plan:
        specs = []
        for entry in args.plan:
            count, sep, spec = entry.partition("*")
            if not sep or not count.isdigit():
                raise SystemExit(f"--plan {entry!r}: expected N*SPEC, e.g. 20*same")
            specs += [spec] * int(count)
        random.Random(args.seed).shuffle(specs)
        return specs
    if not (args.spec and args.runs):
        raise SystemExit("give --spec SPEC --runs N, or --plan N*SPEC ...")
    return [args.spec] * args.runs


def summarize(spec: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = [s for run in runs for s in run["statuses"]]
    ratios = sorted(r for run in runs for r in run["ratios"].values())
    seconds = sorted(run["seconds"] for run in runs)
    return {"spec": spec, "runs": len(runs),
            "runs_with_a_regression": sum("regression" in run["statuses"] for run in runs),
            "benchmark_verdicts": {s: statuses.count(s) for s in sorted(set(statuses))},
            "effect_pct": {q: round(100 * (ratios[int(q / 100 * (len(ratios) - 1))] - 1), 2)
                           for q in (5, 50, 95)} if ratios else {},
            "median_seconds_per_run": seconds[len(seconds) // 2] if seconds else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int)
    parser.add_argument("--spec", help="B's engine spec, e.g. same:slowdown=0.05")
    parser.add_argument("--plan", nargs="+", metavar="N*SPEC")
    parser.add_argument("--seed", type=int, default=0, help="--plan's order")
    parser.add_argument("--only", help="pytest -k expression: a part of the default set")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pause-s", type=float, default=0.0, help="wait between runs")
    args, extra = parser.parse_known_args()
    select = [*SELECT, *(["-k", args.only] if args.only else [])]
    summary: list[dict[str, Any]] = []
    args.out.mkdir(parents=True, exist_ok=True)
    for run, spec in enumerate(parse_plan(args)):
        folder = args.out / f"run{run:02d}"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", *select, "-p", "no:cacheprovider",
                               "-q", "--infer-ab", spec, "--infer-report-dir", str(folder),
                               *extra], cwd=ROOT, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        (args.out / f"run{run:02d}.log").write_text(done.stdout[-20000:] + done.stderr[-5000:])
        if not (folder / "ab.json").is_file():  # a crashed run: say so, go on
            print(f"run {run} ({spec}): exit {done.returncode}, no ab.json; see "
                  f"{args.out}/run{run:02d}.log", flush=True)
            summary.append({"run": run, "spec": spec, "exit": done.returncode,
                            "seconds": round(seconds, 1), "statuses": ["no report"],
                            "rows": {}, "ratios": {}, "a_only": []})
            continue
        document = json.loads((folder / "ab.json").read_text())
        rows = document["rows"]
        statuses = [r["status"] for r in rows]
        summary.append({"run": run, "spec": spec, "exit": done.returncode,
                        "seconds": round(seconds, 1), "statuses": statuses,
                        "rows": {r["name"]: r["status"] for r in rows},
                        "ratios": {r["name"]: r["effect"]["ratio"] for r in rows},
                        "a_only": sorted(document.get("not_ab", {}))})
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        print(f"run {run} ({spec}): exit {done.returncode}, {seconds:.0f} s, {len(rows)} "
              f"benchmarks {counts}, A only {len(document.get('not_ab', {}))}", flush=True)
        by_spec = {s: summarize(s, [r for r in summary if r["spec"] == s])
                   for s in dict.fromkeys(r["spec"] for r in summary)}
        (args.out / "campaign.json").write_text(json.dumps(
            {"select": select, "extra": extra, "by_spec": by_spec, "per_run": summary},
            indent=1) + "\n")
        time.sleep(args.pause_s)
    by_spec = {s: summarize(s, [r for r in summary if r["spec"] == s])
               for s in dict.fromkeys(r["spec"] for r in summary)}
    (args.out / "campaign.json").write_text(json.dumps(  # a crashed last run included
        {"select": select, "extra": extra, "by_spec": by_spec, "per_run": summary},
        indent=1) + "\n")
    for spec, result in by_spec.items():
        print(f"{spec}: {result['runs_with_a_regression']}/{result['runs']} runs flagged a "
              f"regression; verdicts {result['benchmark_verdicts']}; effect % "
              f"{result['effect_pct']}; median {result['median_seconds_per_run']} s per run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

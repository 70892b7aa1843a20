"""Prove the cross-run gate on this host: save a baseline over time, then gate runs of the
same code (A/A) and runs with a planted slowdown, each a separate pytest process, in an
order drawn at random so that every kind of run meets the same spread of host noise.

    python scripts/gate_campaign.py save --runs 10 --pause-s 120 --out /tmp/crossrun
    python scripts/gate_campaign.py gate --plan aa:20,0.5:10,1.0:10 --pause-s 60 \
        --out /tmp/crossrun

`save` appends each run to OUT/baseline.json (`--infer-save-baseline`); `gate` judges each
run against it (`--infer-baseline`, with `--infer-plant-slowdown F` for a planted run) and
counts the verdicts per kind in OUT/campaign.json. Every run's report stays in OUT/runs/.
While a file OUT/pause exists no new run starts (to run something else on a quiet host).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELECT = ["suite", "-m", "perf and not gpu and not slow", "-p", "no:cacheprovider", "-q"]


def parse_plan(text: str) -> list[str]:
    """"aa:20,0.5:10" -> 20 "aa" and 10 "0.5" entries (not yet shuffled)."""
    plan = []
    for part in text.split(","):
        kind, _, count = part.partition(":")
        if kind != "aa":
            float(kind)
        plan += [kind] * int(count)
    return plan


def run_pytest(args: list[str], folder: Path) -> tuple[int, float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", *SELECT, "--infer-report-dir",
                           str(folder), *args], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    (folder / "pytest.log").parent.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.log").write_text(done.stdout + done.stderr)
    return done.returncode, time.perf_counter() - start, done.stdout.strip().splitlines()[-1]


def gate_rows(folder: Path) -> list[dict]:
    report = json.loads((folder / "report.json").read_text())
    return (report.get("gate") or {}).get("rows", [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["save", "gate"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=10, help="save: how many runs")
    parser.add_argument("--plan", default="aa:20", help="gate: KIND:COUNT,... (aa or a "
                                                          "planted slowdown fraction)")
    parser.add_argument("--pause-s", type=float, default=0.0, help="wait between runs")
    parser.add_argument("--seed", type=int, default=0)
    args, extra = parser.parse_known_args()
    baseline = args.out / "baseline.json"
    log = args.out / ("save.jsonl" if args.mode == "save" else "gate.jsonl")
    args.out.mkdir(parents=True, exist_ok=True)
    plan = ["save"] * args.runs if args.mode == "save" else parse_plan(args.plan)
    random.Random(args.seed).shuffle(plan)
    done_before = len(log.read_text().splitlines()) if log.exists() else 0
    for index, kind in enumerate(plan[done_before:], start=done_before):
        while (args.out / "pause").exists():
            time.sleep(5)
        folder = args.out / "runs" / f"{args.mode}{index:02d}"
        if kind == "save":
            options = ["--infer-save-baseline", str(baseline)]
        else:
            options = ["--infer-baseline", str(baseline)]
            if kind != "aa":
                options += ["--infer-plant-slowdown", kind]
        code, seconds, last = run_pytest([*options, *extra], folder)
        rows = gate_rows(folder) if kind != "save" else []
        statuses = [r["status"] for r in rows]
        entry = {"index": index, "kind": kind, "exit": code, "seconds": round(seconds, 1),
                 "time": time.strftime("%H:%M:%S"), "last_line": last,
                 "counts": {s: statuses.count(s) for s in sorted(set(statuses))},
                 "regressions": [r["name"] for r in rows if r["status"] == "regression"],
                 # flagged at first, not repeated when re-measured in the same job
                 "not_repeated": [r["name"] for r in rows
                                  if r["reason"].startswith("inconclusive: not repeated")]}
        with log.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        print(json.dumps(entry), flush=True)
        time.sleep(args.pause_s)
    if args.mode == "gate":
        summarize(log, args.out / "campaign.json")
    return 0


def summarize(log: Path, out: Path) -> None:
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    kinds: dict[str, dict] = {}
    for entry in entries:
        kind = kinds.setdefault(entry["kind"], {"runs": 0, "runs_flagged": 0, "exits": {},
                                                "verdicts": {}, "seconds": []})
        kind["runs"] += 1
        kind["runs_flagged"] += bool(entry["regressions"])
        kind["exits"][str(entry["exit"])] = kind["exits"].get(str(entry["exit"]), 0) + 1
        for status, count in entry["counts"].items():
            kind["verdicts"][status] = kind["verdicts"].get(status, 0) + count
        kind["seconds"].append(entry["seconds"])
    out.write_text(json.dumps(kinds, indent=1) + "\n")
    for name, kind in kinds.items():
        print(f"{name}: {kind['runs_flagged']}/{kind['runs']} runs flagged a regression; "
              f"verdicts {kind['verdicts']}; exits {kind['exits']}")


if __name__ == "__main__":
    raise SystemExit(main())

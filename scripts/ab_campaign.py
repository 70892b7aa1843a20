"""Run the A/B gate N times (separate pytest processes) and count its verdicts: how often
an A/A run false-alarms on this host, and how often a planted slowdown is caught.

    python scripts/ab_campaign.py --runs 20 --spec hf --out /tmp/aa
    python scripts/ab_campaign.py --runs 10 --spec hf:slowdown=0.05 --out /tmp/s5

Each run is `pytest suite -m "perf and not gpu and not slow" --infer-ab SPEC`, minus the
benchmarks that time themselves (the Poisson arrival sweep and load on a server: A only,
no verdict). The knee's batch-1 benchmark runs through the engine and is judged.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELECT = ["suite", "-m", "perf and not gpu and not slow", "-k",
          "not poisson and not endpoint_load"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--spec", required=True, help="B's engine spec, e.g. hf:slowdown=0.05")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pause-s", type=float, default=0.0, help="wait between runs")
    args, extra = parser.parse_known_args()
    summary = []
    for run in range(args.runs):
        folder = args.out / f"run{run:02d}"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", *SELECT, "-p", "no:cacheprovider",
                               "-q", "--infer-ab", args.spec, "--infer-report-dir", str(folder),
                               *extra], cwd=ROOT, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        rows = json.loads((folder / "ab.json").read_text())["rows"]
        statuses = [r["status"] for r in rows]
        summary.append({"run": run, "exit": done.returncode, "seconds": seconds,
                        "statuses": statuses, "rows": {r["name"]: r["status"] for r in rows}})
        counts = {s: statuses.count(s) for s in sorted(set(statuses))}
        print(f"run {run}: exit {done.returncode}, {seconds:.0f} s, {counts}", flush=True)
        time.sleep(args.pause_s)
    runs_flagged = sum(1 for s in summary if "regression" in s["statuses"])
    n_bench = len(summary[0]["statuses"]) if summary else 0
    result = {"spec": args.spec, "runs": args.runs, "benchmarks_per_run": n_bench,
              "runs_with_a_regression": runs_flagged,
              "benchmark_verdicts_regression": sum(s["statuses"].count("regression")
                                                   for s in summary),
              "inconclusive": sum(s["statuses"].count("inconclusive") for s in summary),
              "seconds_per_run": [round(s["seconds"], 1) for s in summary],
              "per_run": summary}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "campaign.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.spec}: {runs_flagged}/{args.runs} runs flagged a regression; "
          f"{result['benchmark_verdicts_regression']}/{args.runs * n_bench} benchmark "
          f"verdicts were regressions; {result['inconclusive']} inconclusive; "
          f"median {sorted(result['seconds_per_run'])[args.runs // 2]} s per run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

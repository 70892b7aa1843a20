"""`infersuite compare A.json B.json ...`: side-by-side percentiles and ratios vs the first file;
`--fail-on-regression` applies the pytest gate's rule to the raw samples."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

from infersuite.baseline.gate import GateRow, compute_gate
from infersuite.documents import DocumentError, peek_schema
from infersuite.report.document import ReportError
from infersuite.report.sources import RunSamples, load_run_samples
from infersuite.report.terminal import format_ms
from infersuite.stats.percentiles import compute_percentile


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare", help="compare runs side by side (reports, baselines, pytest-benchmark JSON)",
        description="Per benchmark: p50/p90/p99 (ms) of each file and the p50 ratio vs the "
                    "first file. Files: report.json, a baseline, or --benchmark-json output; "
                    "or knee.json files of several devices: calibration, raw latency and "
                    "throughput, MBU/MFU efficiency and knees side by side.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.json")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 10 when a later file regresses vs the first file's recorded "
                             "runs, 11 when inconclusive (the pytest gate's rule)")
    parser.add_argument("--threshold", type=float, default=0.05, metavar="FRACTION",
                        help="regression threshold (default 0.05)")
    parser.set_defaults(func=run_compare)


def build_compare_rows(runs: list[RunSamples]) -> list[list[str]]:
    first = runs[0]
    keys = list(dict.fromkeys(k for run in runs for k in run.samples))
    rows = []
    for key in keys:
        row = [next(r.names[key] for r in runs if key in r.names)]
        base = compute_percentile(first.samples.get(key, []), 50)
        for run in runs:
            samples = run.samples.get(key, [])
            row += [format_ms(compute_percentile(samples, p)) for p in (50, 90, 99)]
        for run in runs[1:]:
            cur = compute_percentile(run.samples.get(key, []), 50)
            row.append("–" if base is None or cur is None else f"{cur / base:.3f}x")
        rows.append(row)
    return rows


def render_compare(runs: list[RunSamples]) -> str:
    headers = ["benchmark"]
    for i, _ in enumerate(runs):
        headers += [f"[{i}] p50 ms", f"[{i}] p90", f"[{i}] p99"]
    headers += [f"[{i}]/[0] p50" for i in range(1, len(runs))]
    legend = "\n".join(f"[{i}] {r.path} ({r.kind}, {r.slug})" for i, r in enumerate(runs))
    table = tabulate(build_compare_rows(runs), headers=headers, disable_numparse=True)
    return f"{legend}\n{table}"


def compute_regressions(runs: list[RunSamples], threshold: float) -> list[tuple[int, GateRow]]:
    """Rows of later files that regressed or were inconclusive against the first file's
    recorded runs (the pytest gate's rule, each later file judged as one run)."""
    first, found = runs[0], []
    for index, run in enumerate(runs[1:], start=1):
        current = {key: (run.names[key], run.metrics[key], samples)
                   for key, samples in run.samples.items() if key in first.samples}
        gate = compute_gate(first.samples, current, first.run_medians, threshold)
        found += [(index, row) for row in gate.rows
                  if row.status in ("regression", "inconclusive")]
    return found


def _load_knee_documents(paths: list[Path]) -> list[dict[str, Any]] | None:
    """The files' knee documents when every file is a knee.json, else None."""
    from infersuite.report.knee_document import SCHEMA, load_knee_document

    if not all(peek_schema(path) == SCHEMA for path in paths):
        return None  # load_run_samples reports a foreign or corrupt file precisely
    return [load_knee_document(path) for path in paths]


def run_compare(args: argparse.Namespace) -> int:
    try:
        knee_docs = _load_knee_documents(args.files)
    except DocumentError as exc:
        print(f"infersuite compare: {exc}", file=sys.stderr)
        return 2
    if knee_docs is not None:
        from infersuite.report.knee_compare import render_knee_comparison

        if args.fail_on_regression:
            print("infersuite compare: --fail-on-regression applies to report.json or "
                  "baseline files, not knee.json", file=sys.stderr)
            return 2
        print(render_knee_comparison(knee_docs))
        return 0
    try:
        runs = [load_run_samples(path) for path in args.files]
    except ReportError as exc:
        print(f"infersuite compare: {exc}", file=sys.stderr)
        return 2
    print(render_compare(runs))
    if not args.fail_on_regression:
        return 0
    if len(runs) < 2:
        print("infersuite compare: --fail-on-regression needs at least two files",
              file=sys.stderr)
        return 2
    flagged = compute_regressions(runs, args.threshold)
    for index, row in flagged:
        print(f"{row.status.upper()} [{index}] {row.name}: {row.reason}")
    from infersuite.baseline.gate import EXIT_INCONCLUSIVE, EXIT_REGRESSION

    statuses = {row.status for _, row in flagged}
    return (EXIT_REGRESSION if "regression" in statuses
            else EXIT_INCONCLUSIVE if statuses else 0)

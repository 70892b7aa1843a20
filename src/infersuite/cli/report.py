"""`infersuite report RUN.json`: re-render a saved run (terminal tables, or --markdown)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from infersuite.report.document import ReportError, load_report
from infersuite.report.markdown import render_markdown
from infersuite.report.terminal import render_terminal_report


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report", help="re-render a saved perf run (report.json)",
        description="Print the percentile tables of a report.json written by a perf run.")
    parser.add_argument("report_json", metavar="RUN.json", type=Path)
    parser.add_argument("--markdown", action="store_true", help="print report.md's markdown")
    parser.add_argument("--all-metrics", action="store_true",
                        help="include stage times and every recorded metric")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    try:
        report = load_report(args.report_json)
    except ReportError as exc:
        print(f"infersuite report: {exc}", file=sys.stderr)
        return 2
    if args.markdown:
        print(render_markdown(report))
    else:
        print(render_terminal_report(report, all_metrics=args.all_metrics))
    return 0

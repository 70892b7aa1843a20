"""`infersuite report RUN.json|knee.json`: re-render a saved run or knee report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from infersuite.documents import peek_schema
from infersuite.report.document import ReportError, load_report
from infersuite.report.markdown import render_markdown
from infersuite.report.terminal import render_terminal_report


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report", help="re-render a saved perf run (report.json)",
        description="Print the percentile tables of a report.json written by a perf run, "
                    "or the knee tables of a knee.json written by the batch sweep.")
    parser.add_argument("report_json", metavar="RUN.json", type=Path)
    parser.add_argument("--markdown", action="store_true", help="print report.md's markdown")
    parser.add_argument("--all-metrics", action="store_true",
                        help="include stage times and every recorded metric")
    parser.set_defaults(func=run_report)


KNEE_SCHEMA_PREFIX = "infersuite.knee/"


def run_knee_report(path: Path, markdown: bool) -> int:
    from infersuite.report.knee_document import (
        KneeDocumentError,
        load_knee_document,
        render_knee_terminal,
    )

    if markdown:
        md_path = path.with_name("knee.md")
        if not md_path.is_file():
            print(f"infersuite report: {md_path}: not found next to {path.name}", file=sys.stderr)
            return 2
        print(md_path.read_text())
        return 0
    try:
        doc = load_knee_document(path)
    except KneeDocumentError as exc:
        print(f"infersuite report: {exc}", file=sys.stderr)
        return 2
    print(render_knee_terminal(doc))
    for plot in sorted(path.parent.glob("knee_*.png")):
        print(f"plot: {plot}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    schema = peek_schema(args.report_json)
    if schema is not None and str(schema).startswith(KNEE_SCHEMA_PREFIX):
        return run_knee_report(args.report_json, args.markdown)
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

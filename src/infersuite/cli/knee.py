"""`infersuite knee SWEEP.csv`: parse a sweep CSV, analyze its knees, print JSON."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from infersuite.stats.knee import analyze_sweep
from infersuite.stats.saturation import MODELS
from infersuite.stats.sweep import STATUSES, SweepPoint

_REQUIRED = ("batch_size", "throughput")
_LATENCIES = ("latency_p50", "latency_p99")
_OPTIONAL_LATENCIES = ("latency_p99_upper",)
_EXAMPLE_HEADER = "batch_size,throughput,latency_p50,latency_p99"


class SweepFileError(ValueError):
    """A sweep CSV that cannot be used; the message says what to fix."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "knee",
        help="find the knee of a batch-size/concurrency sweep",
        description=(
            "Report the SLO knee, the power knee (max throughput/p50), a fitted saturation "
            "model and a Kneedle diagnostic for a sweep CSV with columns "
            f"{_EXAMPLE_HEADER} (latencies in seconds; use latency_p50_ms,latency_p99_ms "
            "for milliseconds). Optional columns: latency_p99_upper[_ms], status "
            f"({'|'.join(STATUSES)}). Prints JSON; latencies in the output are seconds."
        ),
    )
    parser.add_argument("sweep_csv", metavar="SWEEP.csv", type=Path)
    slo = parser.add_mutually_exclusive_group()
    slo.add_argument(
        "--slo-ms", type=_positive_float, metavar="MS", help="p99 latency SLO in milliseconds"
    )
    slo.add_argument(
        "--slo-factor",
        type=_positive_float,
        default=2.0,
        metavar="K",
        help="default SLO = K x p99 at the smallest batch (default: 2.0)",
    )
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="auto",
        help="saturation model to fit (default: auto, lower AICc wins)",
    )
    parser.set_defaults(func=run_knee)


def run_knee(args: argparse.Namespace) -> int:
    try:
        points = parse_sweep_csv(args.sweep_csv)
        slo_s = None if args.slo_ms is None else args.slo_ms / 1000.0
        report = analyze_sweep(points, slo=slo_s, slo_factor=args.slo_factor, model=args.model)
        text = json.dumps({**report.to_dict(), "latency_unit": "s"}, indent=2, allow_nan=False)
    except ValueError as exc:  # SweepFileError included
        print(f"infersuite knee: {args.sweep_csv}: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


def parse_sweep_csv(path: Path) -> list[SweepPoint]:
    """Read a sweep CSV into points (latencies converted to seconds); raise SweepFileError."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse_rows(csv.reader(handle))
    except FileNotFoundError:
        raise SweepFileError("no such file; check the path to the sweep CSV") from None
    except IsADirectoryError:
        raise SweepFileError("is a directory; pass the sweep CSV file itself") from None
    except PermissionError:
        raise SweepFileError("permission denied; make the file readable") from None
    except UnicodeDecodeError:
        raise SweepFileError("is not UTF-8 text; export the sweep as a UTF-8 CSV") from None
    except csv.Error as exc:
        raise SweepFileError(f"is not valid CSV ({exc})") from None


def _parse_rows(reader: Any) -> list[SweepPoint]:
    header = next(reader, None)
    if header is None or not any(cell.strip() for cell in header):
        raise SweepFileError(f"is empty; expected a header row like {_EXAMPLE_HEADER}")
    columns = _resolve_columns([cell.strip() for cell in header])
    points: list[SweepPoint] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines are harmless
        where = f"row {len(points) + 1} (line {reader.line_num})"
        points.append(_parse_row(row, columns, where))
    if not points:
        raise SweepFileError("has a header but no data rows; add one row per batch size")
    return points


def _resolve_columns(header: list[str]) -> dict[str, tuple[int, float]]:
    """Map each field to (column index, factor to seconds); factor 1.0 for non-latencies."""
    missing = [name for name in _REQUIRED if name not in header]
    columns = {name: (header.index(name), 1.0) for name in _REQUIRED if name in header}
    for name in _LATENCIES + _OPTIONAL_LATENCIES:
        found = _latency_column(header, name)
        if found is not None:
            columns[name] = found
        elif name in _LATENCIES:
            missing.append(f"{name} (or {name}_ms)")
    if missing:
        raise SweepFileError(
            f"missing column(s) {', '.join(missing)}; header is {','.join(header)!r}, "
            f"expected at least {_EXAMPLE_HEADER}"
        )
    if "status" in header:
        columns["status"] = (header.index("status"), 1.0)
    return columns


def _latency_column(header: list[str], name: str) -> tuple[int, float] | None:
    in_s, in_ms = name in header, f"{name}_ms" in header
    if in_s and in_ms:
        raise SweepFileError(f"has both {name} and {name}_ms; keep one of them")
    if in_s:
        return header.index(name), 1.0
    if in_ms:
        return header.index(f"{name}_ms"), 0.001
    return None


def _parse_row(row: list[str], columns: dict[str, tuple[int, float]], where: str) -> SweepPoint:
    status = "ok"
    if "status" in columns:
        status = _cell(row, columns["status"][0]).lower() or "ok"
        if status not in STATUSES:
            raise SweepFileError(f"{where}: status {status!r} is not one of {', '.join(STATUSES)}")
    batch_text = _cell(row, columns["batch_size"][0])
    batch = _parse_number(batch_text, "batch_size", where, required=True)
    if batch is None or not batch.is_integer() or batch < 1:
        raise SweepFileError(f"{where}: batch_size {batch_text!r} is not a positive integer")
    values: dict[str, float | None] = {}
    for name in ("throughput", *_LATENCIES, *_OPTIONAL_LATENCIES):
        if name not in columns:
            values[name] = None
            continue
        index, factor = columns[name]
        number = _parse_number(
            _cell(row, index),
            name,
            where,
            required=status == "ok" and name not in _OPTIONAL_LATENCIES,
        )
        values[name] = None if number is None else number * factor
    return SweepPoint(batch_size=int(batch), status=status, **values)


def _parse_number(text: str, name: str, where: str, required: bool) -> float | None:
    if text == "":
        if required:
            raise SweepFileError(
                f"{where}: {name} is empty; fill it in, or set the row's status to "
                "oom/timeout/error"
            )
        return None
    try:
        value = float(text)
    except ValueError:
        raise SweepFileError(f"{where}: {name} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0.0:
        raise SweepFileError(f"{where}: {name} {text!r} must be a finite number >= 0")
    return value


def _cell(row: list[str], index: int) -> str:
    return row[index].strip() if index < len(row) else ""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0.0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value

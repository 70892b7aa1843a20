"""The report document (``"schema": "infersuite.report/1"``): build, save, load.

Top-level keys: schema, created, fingerprint, timing, settings, benchmarks, series, gate,
notes. Each benchmark keeps its raw samples per metric next to their summary, so a saved
run can be re-rendered and re-gated later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from infersuite.atomic import write_text_atomic
from infersuite.baseline.gate import GateResult, GateRow
from infersuite.documents import DocumentError, parse_document, read_text
from infersuite.measure.records import PerfRecord
from infersuite.measure.scaling import compute_loglog_slope
from infersuite.stats.percentiles import compute_summary

REPORT_SCHEMA = "infersuite.report/1"
TIMING_WINDOW = (
    "E2E: request start (prompt text in hand) -> last token detokenized; includes tokenize, "
    "pad, prefill, decode and detokenize, whose stage times are reported separately. "
    "TTFT: request start -> first generated token id available. ITL: gaps between "
    "consecutive generated tokens (pooled). TPOT: (E2E - TTFT) / (n_generated - 1). "
    "Output length fixed (min_new_tokens == max_new_tokens, EOS cannot end it)."
)


class ReportError(DocumentError):
    """A report file that cannot be read; the message names the path and the problem."""


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _summarize(samples: Sequence[float]) -> dict[str, Any] | None:
    finite = [v for v in samples if isinstance(v, (int, float)) and math.isfinite(v)]
    return compute_summary(finite).to_dict() if finite else None


def build_benchmark_entry(record: PerfRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "fullname": record.fullname,
        "group": record.group,
        "primary": record.primary,
        "source": record.source,
        "extra": _clean(record.extra),
        "metrics": {
            metric: {"unit": "s", "summary": _summarize(samples), "samples": _clean(samples)}
            for metric, samples in record.metrics.items()
        },
    }


def build_series(records: Sequence[PerfRecord]) -> list[dict[str, Any]]:
    """Fit time ∝ size^b per series (records whose extra has "series" and "size")."""
    points: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        series, size = record.extra.get("series"), record.extra.get("size")
        samples = sorted(record.primary_samples())
        if series is None or size is None or not samples:
            continue
        points.setdefault(series, []).append((float(size), samples[len(samples) // 2]))
    out = []
    for series, pts in sorted(points.items()):
        pts.sort()
        sizes, medians = [p[0] for p in pts], [p[1] for p in pts]
        out.append({"series": series, "sizes": sizes, "medians_s": medians,
                    "exponent": compute_loglog_slope(sizes, medians),
                    "fit": "least-squares slope of log(median time) on log(size)"})
    return out


def build_gate_row(row: GateRow) -> dict[str, Any]:
    effect = row.effect
    return _clean({
        "key": row.key, "name": row.name, "metric": row.metric, "status": row.status,
        "baseline_median_s": row.baseline_median, "current_median_s": row.current_median,
        "median_ratio": effect.ratio if effect else None,
        "ratio_lower": effect.ratio_lower if effect else None,
        "ratio_upper": effect.ratio_upper if effect else None,
        "baseline_runs": effect.n if effect else None,
        "p_value_slower": effect.p_slower if effect else None,
        "p_value_slower_adjusted": row.p_slower_adjusted,
        "gated_on": row.gated_on, "noise": row.noise, "other_median_ratio": row.other_ratio,
        "threshold": row.threshold, "reason": row.reason, "rerun": row.rerun,
    })


def build_report(records: Sequence[PerfRecord], fingerprint: dict[str, Any],
                 settings: dict[str, Any], gate: GateResult | None = None,
                 baseline_path: str | None = None, notes: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
        "timing": {"window": TIMING_WINDOW, "tokenization_in_e2e": True},
        "settings": _clean(settings),
        "benchmarks": [build_benchmark_entry(r) for r in records],
        "series": build_series(records),
        "gate": None if gate is None else {
            "baseline": baseline_path, "threshold": gate.threshold,
            "correction": gate.correction, "noise_floors": gate.noise_floors,
            "rows": [build_gate_row(r) for r in gate.rows]},
        "notes": list(notes),
    }


def save_report(directory: Path, report: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    directory = Path(directory)
    json_path, md_path = directory / "report.json", directory / "report.md"
    write_text_atomic(json_path, json.dumps(report, indent=1) + "\n")
    write_text_atomic(md_path, markdown)
    return json_path, md_path


def _report_error(path: Path) -> Callable[[str], ReportError]:
    return lambda problem: ReportError(
        f"{path}: {problem} (expected a report.json written by an infersuite perf run)")


def parse_report(path: Path, text: str) -> dict[str, Any]:
    return parse_document(text, REPORT_SCHEMA, {"benchmarks": list}, _report_error(path))


def load_report(path: Path) -> dict[str, Any]:
    return parse_report(path, read_text(path, _report_error(path)))

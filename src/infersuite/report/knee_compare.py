"""Render knee reports (knee.json) of several devices side by side.

Raw times answer "which card is faster"; efficiency against each card's own measured
limits (MBU for decode, MFU for prefill) answers "which run uses its card better".
The two are printed as separate tables so one is never read as the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

KNEE_SCHEMA_PREFIX = "infersuite.knee/"


def is_knee_document(doc: Any) -> bool:
    return isinstance(doc, dict) and str(doc.get("schema", "")).startswith(KNEE_SCHEMA_PREFIX)


def _label(doc: dict[str, Any], sweep: dict[str, Any]) -> str:
    slug = (doc.get("fingerprint") or {}).get("slug", "?")
    return f"{slug} {sweep.get('model', '?')}-{sweep.get('dtype', '?')}"


def _ok_points(sweep: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(p["batch_size"]): p for p in sweep.get("points", []) if p.get("status") == "ok"}


def _pct_ms(point: dict[str, Any], name: str) -> str:
    entry = ((point.get("latency_s") or {}).get("percentiles") or {}).get(name) or {}
    value = entry.get("value")
    return "—" if value is None else f"{value * 1e3:.2f}"


def _fraction(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def _calibration_row(doc: dict[str, Any], sweep: dict[str, Any]) -> list[str]:
    cal = sweep.get("calibration") or {}
    flops, bandwidth = cal.get("flops_per_s"), cal.get("bytes_per_s")
    return [_label(doc, sweep), sweep.get("device_name", "?"),
            "—" if flops is None else f"{flops / 1e9:,.1f}",
            "—" if bandwidth is None else f"{bandwidth / 1e9:,.2f}"]


def _knee_cell(knee: Any) -> str:
    return "—" if not knee or knee.get("batch_size") is None else str(knee["batch_size"])


def _knee_row(doc: dict[str, Any], sweep: dict[str, Any]) -> list[str]:
    knee = sweep.get("knee") or {}
    fit = knee.get("fit") or {}
    params = fit.get("params") or {}
    fit_text = fit.get("model", "—") if fit.get("status") == "ok" else fit.get("status", "—")
    if fit.get("status") == "ok" and params:
        fit_text += " " + ", ".join(f"{k}={v:.3g}" for k, v in params.items())
    return [_label(doc, sweep), _knee_cell(knee.get("slo_knee")),
            _knee_cell(knee.get("power_knee")), fit_text]


def render_knee_comparison(docs: Sequence[dict[str, Any]]) -> str:
    """Tables: calibration, raw latency/throughput, efficiency, knees; one row per
    (device, sweep) at each batch size every compared sweep measured."""
    sweeps = [(doc, sweep) for doc in docs for sweep in doc.get("sweeps", [])]
    if not sweeps:
        return "no batch sweeps in these knee reports"
    common = sorted(set.intersection(*(set(_ok_points(s)) for _, s in sweeps)))
    raw, efficiency = [], []
    for batch in common:
        for doc, sweep in sweeps:
            point = _ok_points(sweep)[batch]
            eff = point.get("efficiency") or {}
            tokens = point.get("tokens_per_s")
            raw.append([batch, _label(doc, sweep), _pct_ms(point, "p50"), _pct_ms(point, "p99"),
                        "—" if tokens is None else f"{tokens:,.0f}"])
            efficiency.append([batch, _label(doc, sweep), _fraction(eff.get("mbu")),
                               _fraction(eff.get("mfu"))])
    return "\n\n".join([
        "calibration (measured in each run)\n" + tabulate(
            [_calibration_row(d, s) for d, s in sweeps],
            headers=["run", "device", "GEMM GFLOP/s", "copy GB/s"], disable_numparse=True),
        "faster card — raw times at common batch sizes\n" + tabulate(
            raw, headers=["batch", "run", "p50 ms", "p99 ms", "tokens/s"], disable_numparse=True),
        "better use of the card — efficiency vs each card's own measured limits\n" + tabulate(
            efficiency, headers=["batch", "run", "MBU (decode)", "MFU (prefill)"]),
        "knees\n" + tabulate([_knee_row(d, s) for d, s in sweeps],
                             headers=["run", "SLO knee", "power knee", "saturation fit"]),
    ])

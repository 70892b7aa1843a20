"""The runtime comparison: each variant's latency, its speed-up over PyTorch float32 (and over
torch.compile) with an interval, its agreement with PyTorch float32, and a claim judged.

Latency: median and p90 with 95% order-statistic intervals (stats/percentiles.py). Speed-up:
from the interleaved rounds as pairs (stats/paired.py: the median of the per-round time
ratios, its 95% interval), turned over so that > 1 is faster. A claimed speed-up k *held*
when the whole interval is at or above k, *did not hold* when the whole interval is below
k, and is *undecided* otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tabulate import tabulate

from infersuite.stats.paired import compute_paired_effect
from infersuite.stats.percentiles import compute_summary

CONFIDENCE = 0.95
# The speed-ups a runtime handbook states for an ASR model on Intel Xeon CPUs: PyTorch FP32
# 100 ms, OpenVINO FP32 50 ms (2x), OpenVINO INT8 20 ms (5x).
HANDBOOK_CLAIMS = {"openvino-fp32": 2.0, "openvino-int8": 5.0}


def compute_agreement(actual: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    """How far `actual` [batch, positions, width] is from `expected`: the largest absolute
    difference and where, that difference over the largest |expected|, and the cosine
    similarity of each position's vector (the lowest, and the mean)."""
    if actual.shape != expected.shape:
        raise ValueError(f"output shape {actual.shape} differs from the reference's "
                         f"{expected.shape}")
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    diff = np.abs(a - e)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(e, axis=-1)
    cosine = np.sum(a * e, axis=-1) / np.maximum(norms, np.finfo(np.float64).tiny)
    return {"max_abs_diff": float(diff.max()),
            "worst_position": [int(i) for i in worst[:-1]],
            "relative_max_diff": float(diff.max() / max(np.abs(e).max(), 1e-30)),
            "cosine_min": float(cosine.min()), "cosine_mean": float(cosine.mean())}


def compute_speedup(reference: Sequence[float], variant: Sequence[float]) -> dict[str, float]:
    """reference time / variant time over paired rounds, with its interval."""
    effect = compute_paired_effect(reference, variant, confidence=CONFIDENCE)
    return {"speedup": 1.0 / effect.ratio, "lower": 1.0 / effect.ratio_upper,
            "upper": 1.0 / effect.ratio_lower if effect.ratio_lower > 0 else math.inf,
            "rounds": effect.n}


def judge_claim(speedup: Mapping[str, float], claimed: float) -> str:
    if speedup["lower"] >= claimed:
        return "held"
    if speedup["upper"] < claimed:
        return "did not hold"
    return "undecided"


def _latency(samples: Sequence[float]) -> dict[str, Any]:
    summary = compute_summary(samples, (50, 90), CONFIDENCE)
    return {label: {"value": est.value, "lower": est.lower, "upper": est.upper}
            for label, est in (("p50", summary.percentiles[50]),
                               ("p90", summary.percentiles[90]))}


def build_rows(times: Mapping[str, Sequence[float]], outputs: Mapping[str, np.ndarray],
               reference: str, compiled: str | None,
               claims: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per variant, in `times`' order."""
    claims = HANDBOOK_CLAIMS if claims is None else claims
    rows = []
    for name, samples in times.items():
        row: dict[str, Any] = {"variant": name, "latency_s": _latency(samples)}
        if name != reference:
            row["speedup"] = compute_speedup(times[reference], samples)
            row["agreement"] = compute_agreement(outputs[name], outputs[reference])
        if compiled is not None and compiled in times and name not in (reference, compiled):
            row["speedup_vs_compile"] = compute_speedup(times[compiled], samples)
        if name in claims and "speedup" in row:
            row["claim"] = {"speedup": claims[name],
                            "verdict": judge_claim(row["speedup"], claims[name])}
        rows.append(row)
    return rows


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1e3:.1f}"


def _interval(est: Mapping[str, Any]) -> str:
    return f"{_ms(est['value'])} [{_ms(est['lower'])}, {_ms(est['upper'])}]"


def _ratio(speedup: Mapping[str, float] | None) -> str:
    if not speedup:
        return "1 (reference)"
    low, high = speedup["lower"], speedup["upper"]  # unbounded with too few rounds
    return (f"{speedup['speedup']:.2f}x [{f'{low:.2f}' if low > 0 else '–'}, "
            f"{f'{high:.2f}' if math.isfinite(high) else '–'}]")


def render_table(document: Mapping[str, Any], fmt: str = "simple") -> str:
    variants = {v["name"]: v for v in document["variants"]}
    table = []
    for row in document["rows"]:
        agreement = row.get("agreement")
        claim = row.get("claim")
        table.append([
            row["variant"], variants[row["variant"]]["precision"],
            _interval(row["latency_s"]["p50"]), _interval(row["latency_s"]["p90"]),
            _ratio(row.get("speedup")),
            _ratio(row["speedup_vs_compile"]) if "speedup_vs_compile" in row else "–",
            f"{agreement['max_abs_diff']:.2e}" if agreement else "–",
            f"{agreement['cosine_min']:.6f}" if agreement else "–",
            f"{claim['speedup']:g}x: {claim['verdict']}" if claim else "–"])
    return tabulate(table, headers=[
        "variant", "precision (read back)", "p50 ms [95% CI]", "p90 ms [95% CI]",
        "speed-up vs torch-fp32", "vs torch-compile", "max |diff|", "cosine (min)",
        "handbook claim"], disable_numparse=True, tablefmt=fmt)

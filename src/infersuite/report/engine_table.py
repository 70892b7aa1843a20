"""engines.json → the side-by-side table: per case (model, dtype, device, engine) the
conformance verdict, agreement with the reference and request latency."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from infersuite.report.terminal import format_estimate

SCHEMA = "infersuite.engines/1"
HEADERS = ["case", "conformance", "max |Δ logprob| vs reference", "TTFT p50 ms", "TTFT p99",
           "TPOT p50 ms", "TPOT p99"]


def render_verdict(outcomes: dict[str, int]) -> str:
    """`FAIL 2/14` when anything failed, else `pass 12/14`; xfails and skips named."""
    failed = outcomes.get("failed", 0) + outcomes.get("error", 0)
    ran = sum(v for k, v in outcomes.items() if k != "skipped")
    head = f"FAIL {failed}/{ran}" if failed else f"pass {outcomes.get('passed', 0)}/{ran}"
    extra = [f"{outcomes[k]} {k}" for k in ("xfailed", "skipped") if outcomes.get(k)]
    return head + (f" ({', '.join(extra)})" if extra else "")


def _percentile(summary: dict[str, Any] | None, label: str) -> str:
    if not summary:
        return "–"
    return format_estimate(summary["percentiles"].get(label))


def build_engine_rows(doc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for case_id, row in doc["cases"].items():
        diff = row.get("max_abs_logprob_diff")
        agreement = "reference" if row.get("is_reference") else (
            "–" if diff is None else f"{diff:.2e}")
        ttft, tpot = row.get("ttft_s"), row.get("tpot_s")
        rows.append([case_id, render_verdict(row["outcomes"]), agreement,
                     _percentile(ttft, "p50"), _percentile(ttft, "p99"),
                     _percentile(tpot, "p50"), _percentile(tpot, "p99")])
    return rows


def render_engine_table(doc: dict[str, Any], fmt: str = "simple") -> str:
    rows = build_engine_rows(doc)
    if not rows:
        return "no engine cases ran"
    return tabulate(rows, headers=HEADERS, tablefmt=fmt, disable_numparse=True)

"""Render a report document as markdown (report.md)."""

from __future__ import annotations

from typing import Any

from infersuite.report.terminal import (
    render_gate_table,
    render_headlines,
    render_percentile_table,
    render_series_table,
)


def _fingerprint_lines(fp: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in (fp.get("versions") or {}).items() if v)
    lines = [f"- device slug: `{fp.get('slug')}`",
             f"- CPU: {fp.get('cpu', {}).get('model')} ({fp.get('cpu', {}).get('cores')} cores)",
             f"- python {fp.get('python')}; {versions}",
             f"- git commit: {fp.get('git_commit') or 'unknown'}"]
    gpu = fp.get("gpu")
    if gpu:
        lines.insert(2, f"- GPU: {gpu.get('name')}, {gpu.get('memory_bytes', 0) / 2**30:.0f} GiB, "
                        f"driver {gpu.get('driver')}, CUDA {gpu.get('cuda')}")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    parts = ["# infersuite perf report", "", f"Created {report.get('created')}.", "",
             *_fingerprint_lines(report.get("fingerprint") or {}), "",
             "## Timing window", "", report.get("timing", {}).get("window", ""), "",
             "## Percentiles", "",
             "Milliseconds; `[lower, upper]` is the 95% order-statistic interval, `?` a bound "
             "that needs more samples, `*` a percentile with too few samples.", "",
             render_percentile_table(report, all_metrics=True, fmt="github"), ""]
    series = render_series_table(report, fmt="github")
    if series:
        parts += ["## Growth with generated length", "", series, ""]
    headlines = render_headlines(report)
    if headlines:
        parts += ["## Headlines", "", *(f"- {h}" for h in headlines), ""]
    gate = report.get("gate")
    if gate:
        parts += [f"## Regression gate vs `{gate['baseline']}`", "",
                  render_gate_table(gate, fmt="github") or "nothing compared", ""]
    notes = report.get("notes") or []
    if notes:
        parts += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(parts)

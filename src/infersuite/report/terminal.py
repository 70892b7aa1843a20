"""Render a report document as plain-text tables (tabulate): percentiles, series, gate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

SHOWN_METRICS = ("e2e_s", "ttft_s", "itl_s", "tpot_s")
PERCENTILE_KEYS = ("p50", "p90", "p95", "p99")


def format_ms(value: float | None) -> str:
    if value is None:
        return "–"
    ms = value * 1e3
    return f"{ms:.3g}" if ms < 10 else f"{ms:.1f}"


def format_estimate(estimate: dict[str, Any] | None) -> str:
    """`12.3 [12.1, 12.6]`; a bound that needs more samples prints as `?`, and `*` marks
    a percentile with too few samples."""
    if not estimate:
        return "–"
    lower = format_ms(estimate["lower"]) if estimate["lower"] is not None else "?"
    upper = format_ms(estimate["upper"]) if estimate["upper"] is not None else "?"
    flag = "" if estimate["enough_samples"] else "*"
    return f"{format_ms(estimate['value'])} [{lower}, {upper}]{flag}"


def _flags(summary: dict[str, Any]) -> str:
    few = [k for k, est in summary["percentiles"].items() if not est["enough_samples"]]
    return f"few samples: {','.join(few)}" if few else ""


def _metrics_to_show(bench: dict[str, Any], all_metrics: bool) -> list[str]:
    names = list(bench["metrics"])
    if all_metrics:
        return names
    shown = [m for m in names if m == bench["primary"] or m in SHOWN_METRICS]
    return shown or names[:1]


def build_percentile_rows(report: dict[str, Any], all_metrics: bool = False) -> list[list[str]]:
    rows = []
    for bench in report["benchmarks"]:
        for metric in _metrics_to_show(bench, all_metrics):
            summary = bench["metrics"][metric]["summary"]
            if summary is None:
                continue
            pcts = summary["percentiles"]
            rows.append([bench["name"], metric, str(summary["n"]),
                         *(format_estimate(pcts.get(k)) for k in PERCENTILE_KEYS),
                         format_ms(summary["max"]), _flags(summary)])
    return rows


PERCENTILE_HEADERS = ["benchmark", "metric", "n", "p50 ms [95% CI]", "p90", "p95", "p99",
                      "max", "flags"]


def render_percentile_table(report: dict[str, Any], all_metrics: bool = False,
                            fmt: str = "simple") -> str:
    rows = build_percentile_rows(report, all_metrics)
    if not rows:
        return "no perf samples recorded"
    return tabulate(rows, headers=PERCENTILE_HEADERS, tablefmt=fmt, disable_numparse=True)


def render_series_table(report: dict[str, Any], fmt: str = "simple") -> str:
    rows = []
    for series in report.get("series") or []:
        points = ", ".join(f"{s:g}:{format_ms(t)}" for s, t in
                           zip(series["sizes"], series["medians_s"], strict=False))
        exponent = series["exponent"]
        rows.append([series["series"], "–" if exponent is None else f"{exponent:.2f}", points])
    if not rows:
        return ""
    return tabulate(rows, headers=["series", "exponent b (t ∝ n^b)", "size:median ms"],
                    tablefmt=fmt, disable_numparse=True)


def _ratio(row: dict[str, Any]) -> str:
    if row.get("median_ratio") is None:
        return "–"
    return (f"{(row['median_ratio'] - 1) * 100:+.1f}% "
            f"[{(row['ratio_lower'] - 1) * 100:+.1f}, {(row['ratio_upper'] - 1) * 100:+.1f}]")


def _gated_on(row: dict[str, Any]) -> str:
    """Which series the verdict is on; with the reference probe, the other's shift too."""
    other = row.get("other_median_ratio")
    if other is None:
        return row.get("gated_on", "raw")
    label = "raw" if row.get("gated_on") == "normalized" else "normalized"
    return f"{row.get('gated_on')} ({label} {(other - 1) * 100:+.1f}%)"


def render_gate_table(gate: dict[str, Any], statuses: Sequence[str] | None = None,
                      fmt: str = "simple") -> str:
    rows = [[r["name"], r["metric"], r["status"], format_ms(r["baseline_median_s"]),
             format_ms(r["current_median_s"]), _gated_on(r), _ratio(r),
             "–" if r.get("p_value_slower_adjusted") is None
             else f"{r['p_value_slower_adjusted']:.2g}",
             r.get("baseline_runs") or "–"]
            for r in gate["rows"] if statuses is None or r["status"] in statuses]
    if not rows:
        return ""
    return tabulate(rows, headers=["benchmark", "metric", "verdict", "baseline p50 ms",
                                   "current p50 ms", "gated on",
                                   "shift vs baseline runs [99% CI]",
                                   f"p(slower), {gate.get('correction', 'holm')}", "runs"],
                    tablefmt=fmt, disable_numparse=True)


def render_headlines(report: dict[str, Any]) -> list[str]:
    """Each benchmark's headline and measured GPU energy; energy reasons once each."""
    from infersuite.measure.energy import describe_energy

    lines: list[str] = []
    reasons: dict[str, list[str]] = {}
    for bench in report["benchmarks"]:
        extra = bench.get("extra") if isinstance(bench.get("extra"), dict) else {}
        if extra.get("headline"):
            lines.append(f"{bench['name']}: {extra['headline']}")
        energy = extra.get("energy")
        if isinstance(energy, dict) and energy.get("status") == "ok":
            lines.append(f"{bench['name']}: {describe_energy(energy)}")
        elif isinstance(energy, dict):
            reasons.setdefault(describe_energy(energy), []).append(bench["name"])
    lines += [f"{reason} ({len(names)} benchmarks)" for reason, names in reasons.items()]
    return lines


def render_terminal_report(report: dict[str, Any], all_metrics: bool = False) -> str:
    parts = [f"device: {report['fingerprint'].get('slug')}  "
             "(ms; [95% order-statistic interval]; ? = bound needs more samples; "
             "* = too few samples for that percentile)",
             render_percentile_table(report, all_metrics)]
    series = render_series_table(report)
    if series:
        parts.append(series)
    parts.extend(render_headlines(report))
    if report.get("gate"):
        parts.append(render_gate_summary(report["gate"]))
    parts.extend(report.get("notes") or [])
    return "\n".join(p for p in parts if p)


def render_gate_summary(gate: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for row in gate["rows"]:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    head = (f"regression gate vs {gate['baseline']} (threshold {gate['threshold']:.0%}, "
            f"{gate.get('correction', 'holm')} over the benchmarks): "
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    table = render_gate_table(gate, statuses=("regression", "improvement", "inconclusive"))
    if any(r["status"] == "regression" for r in gate["rows"]):
        head = "PERFORMANCE REGRESSION — " + head
    return head + ("\n" + table if table else "")

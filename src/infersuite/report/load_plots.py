"""Plots of a load run (load.json): latency percentiles and goodput against the request
rate, with the highest rate that meets the SLO marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infersuite.report.knee_plots import PLOT_HINT, _load_pyplot, _save

LOAD_RATE = "load_rate"


def _ms(summary: dict[str, Any] | None, label: str) -> tuple[float, float, float] | None:
    estimate = ((summary or {}).get("percentiles") or {}).get(label)
    if not estimate or estimate.get("value") is None:
        return None
    value = estimate["value"] * 1e3
    lower = (estimate["lower"] * 1e3) if estimate.get("lower") is not None else value
    upper = (estimate["upper"] * 1e3) if estimate.get("upper") is not None else value
    return value, value - lower, upper - value


def render_load_plots(doc: dict[str, Any], out_dir: Path) -> tuple[list[Path], str]:
    """One figure per case with a rate sweep; ([paths], note)."""
    plt = _load_pyplot()
    if plt is None:
        return [], PLOT_HINT
    paths: list[Path] = []
    for case, sweep in (doc.get("rate_sweeps") or {}).items():
        levels = sorted(sweep["levels"], key=lambda row: row["requested_rate_per_s"])
        rates = [row["requested_rate_per_s"] for row in levels]
        fig, (latency, goodput) = plt.subplots(1, 2, figsize=(11, 4))
        for metric, label, style in (("ttft_s", "p50", "o-"), ("ttft_s", "p99", "o--"),
                                     ("tpot_s", "p99", "s--"), ("e2e_s", "p99", "^--")):
            found = [(r, _ms(row["metrics"].get(metric), label))
                     for r, row in zip(rates, levels, strict=True)]
            points = [(r, p) for r, p in found if p is not None]
            if points:
                latency.errorbar([r for r, _ in points], [p[0] for _, p in points],
                                 yerr=[[p[1] for _, p in points], [p[2] for _, p in points]],
                                 fmt=style, capsize=3, label=f"{metric[:-2].upper()} {label}")
        for metric, target in (doc.get("slo") or {}).items():
            latency.axhline(target * 1e3, color="grey", linewidth=0.8, linestyle=":")
            latency.annotate(f"{metric[:-2]} target", (rates[0], target * 1e3), fontsize=7)
        goodput.plot(rates, [row["goodput_req_s"] for row in levels], "o-", label="goodput")
        goodput.plot(rates, rates, ":", color="grey", label="requested rate")
        best = sweep.get("max_rate_meeting_slo")
        for ax in (latency, goodput):
            if best:
                ax.axvline(best, color="tab:red", linewidth=1,
                           label=f"highest rate meeting the SLO ({best:.1f}/s)")
            ax.set_xlabel("requested rate (requests/s)")
            ax.legend(fontsize=7)
        latency.set_yscale("log")
        latency.set_ylabel("ms (95% intervals)")
        goodput.set_ylabel("requests/s meeting every target")
        fig.suptitle(case, fontsize=9)
        paths += _save(fig, out_dir, f"{LOAD_RATE}-{case}")
        plt.close(fig)
    return paths, ""

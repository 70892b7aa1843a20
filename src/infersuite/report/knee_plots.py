"""Knee plots from a knee.json document: latency vs throughput, and percentiles vs batch.

matplotlib is imported lazily (Agg backend); without it ``render_knee_plots`` returns no
paths and a hint, and the tables are rendered as usual.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from infersuite.atomic import write_bytes_atomic

PLOT_HINT = "plots skipped: matplotlib is not installed; pip install infersuite[plots] to get plots"

LATENCY_THROUGHPUT = "knee_latency_throughput"
LATENCY_BATCH = "knee_latency_batch"
_KNEE_STYLE = {  # method -> (label, marker, colour)
    "slo": ("SLO knee", "*", "tab:red"),
    "power": ("power knee", "D", "tab:green"),
    "kneedle": ("Kneedle (diagnostic)", "X", "tab:purple"),
}


def _load_pyplot() -> Any | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def is_speech(sweep: dict[str, Any]) -> bool:
    """A speech engine's sweep (throughput in audio seconds/s), not a text model's."""
    return sweep.get("workload") == "speech"


def throughput_of(point: dict[str, Any], sweep: dict[str, Any]) -> float | None:
    """A point's throughput in its sweep's unit: audio seconds/s or generated tokens/s."""
    return point.get("audio_s_per_s") if is_speech(sweep) else point.get("tokens_per_s")


def _ok_points(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in sweep["points"] if p["status"] == "ok" and p.get("latency_s")]


def _pct_ms(point: dict[str, Any], label: str, key: str = "value") -> float | None:
    value = point["latency_s"]["percentiles"][label].get(key)
    return None if value is None else value * 1e3


def _knee_batches(sweep: dict[str, Any]) -> dict[str, int | None]:
    knee = sweep["knee"]
    return {"slo": knee["slo_knee"]["batch_size"], "power": knee["power_knee"]["batch_size"],
            "kneedle": knee["kneedle"].get("batch_size")}


def _group_knees(found: dict[str, int | None]) -> dict[int, list[str]]:
    """Batch -> the methods that chose it, so coinciding knees get one label."""
    grouped: dict[int, list[str]] = {}
    for method, batch in found.items():
        if batch is not None:
            grouped.setdefault(batch, []).append(method)
    return grouped


def _slo_ms(sweep: dict[str, Any]) -> float | None:
    slo = (sweep["knee"]["slo_knee"].get("detail") or {}).get("slo")
    return None if slo is None else slo * 1e3


def _error_below(point: dict[str, Any], value: float | None) -> float:
    """Error-bar length below p99: to its lower bound, 0 when either is unknown."""
    lower = _pct_ms(point, "p99", "lower")
    return 0.0 if value is None or lower is None else max(0.0, value - lower)


def _error_above(point: dict[str, Any], value: float | None) -> float:
    upper = _pct_ms(point, "p99", "upper")
    return 0.0 if value is None or upper is None else max(0.0, upper - value)


def _plot_latency_throughput(ax: Any, sweep: dict[str, Any], colour: str) -> None:
    pts = _ok_points(sweep)
    xs = [throughput_of(p, sweep) for p in pts]
    p50 = [_pct_ms(p, "p50") for p in pts]
    p99 = [_pct_ms(p, "p99") for p in pts]
    low = [_error_below(p, v) for p, v in zip(pts, p99, strict=True)]
    high = [_error_above(p, v) for p, v in zip(pts, p99, strict=True)]
    ax.plot(xs, p50, "o-", color=colour, label=f"{sweep['id']} p50")
    ax.errorbar(xs, p99, yerr=[low, high], fmt="s--", color=colour, alpha=0.7, capsize=3,
                label=f"{sweep['id']} p99 (95% CI bounds where n allows)")
    for p, x, y in zip(pts, xs, p50, strict=True):
        ax.annotate(f"b={p['batch_size']}", (x, y), textcoords="offset points", xytext=(4, -12),
                    fontsize=7, color="dimgray")
    by_batch = {p["batch_size"]: (x, y) for p, x, y in zip(pts, xs, p99, strict=True)}
    found = _knee_batches(sweep)
    for method, batch in found.items():
        if batch in by_batch:
            label, marker, knee_colour = _KNEE_STYLE[method]
            x, y = by_batch[batch]
            ax.plot([x], [y], marker, color=knee_colour, markersize=14, markerfacecolor="none",
                    markeredgewidth=2, label=f"{label}: batch {batch}")
    for offset, (batch, methods) in enumerate(_group_knees(found).items()):
        if batch in by_batch:
            text = " + ".join(_KNEE_STYLE[m][0] for m in methods) + f"\nb={batch}"
            ax.annotate(text, by_batch[batch], textcoords="offset points",
                        xytext=(-12, 14 + 22 * offset), fontsize=8, ha="right",
                        color=_KNEE_STYLE[methods[0]][2])
    missing = [_KNEE_STYLE[m][0] for m, b in found.items() if b is None]
    if missing:
        ax.text(0.99, 0.02, "not found: " + ", ".join(missing), transform=ax.transAxes,
                ha="right", va="bottom", fontsize=8, color="dimgray")
    slo = _slo_ms(sweep)
    if slo is not None:
        ax.axhline(slo, color="tab:red", linestyle=":", linewidth=1,
                   label=f"SLO {slo:.1f} ms (p99)")


def _plot_latency_batch(ax: Any, sweep: dict[str, Any]) -> None:
    pts = _ok_points(sweep)
    xs = [p["batch_size"] for p in pts]
    for label, style in (("p50", "o-"), ("p90", "^-"), ("p99", "s-")):
        ax.plot(xs, [_pct_ms(p, label) for p in pts], style, label=f"{sweep['id']} {label}")
    slo = _slo_ms(sweep)
    if slo is not None:
        ax.axhline(slo, color="tab:red", linestyle=":", linewidth=1, label=f"SLO {slo:.1f} ms")
    for method, batch in _knee_batches(sweep).items():
        if batch is not None:
            label, _, colour = _KNEE_STYLE[method]
            ax.axvline(batch, color=colour, linestyle="--", linewidth=1,
                       label=f"{label}: batch {batch}")
    missing = [_KNEE_STYLE[m][0] for m, b in _knee_batches(sweep).items() if b is None]
    if missing:
        ax.text(0.99, 0.02, "not found: " + ", ".join(missing), transform=ax.transAxes,
                ha="right", va="bottom", fontsize=8, color="dimgray")
    failed = [p for p in sweep["points"] if p["status"] != "ok"]
    for p in failed:
        ax.axvline(p["batch_size"], color="black", linestyle="-.", linewidth=1,
                   label=f"batch {p['batch_size']}: {p['status']}")


def _save(fig: Any, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        path = out_dir / f"{stem}.{ext}"
        buffer = io.BytesIO()
        fig.savefig(buffer, format=ext, dpi=120, bbox_inches="tight")
        write_bytes_atomic(path, buffer.getvalue())
        paths.append(path)
    return paths


def _latency_throughput_plots(plt: Any, sweeps: list[dict[str, Any]], level: str,
                              out_dir: Path) -> list[Path]:
    """One latency-throughput plot per throughput unit: tokens/s, and audio seconds/s for
    speech sweeps (``knee_latency_throughput_speech``)."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    paths: list[Path] = []
    groups = {"": [s for s in sweeps if not is_speech(s)],
              "_speech": [s for s in sweeps if is_speech(s)]}
    for suffix, group in groups.items():
        if not group:
            continue
        fig, ax = plt.subplots(figsize=(8, 5.5))
        for i, sweep in enumerate(group):
            _plot_latency_throughput(ax, sweep, colours[i % len(colours)])
        unit = "audio seconds/s" if suffix else "generated tokens/s"
        ax.set_xlabel(f"throughput ({unit})")
        ax.set_ylabel("per-request latency, E2E (ms)")
        ax.set_title(f"Latency vs throughput across {level} levels"
                     + (" (speech)" if suffix else ""))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        paths += _save(fig, out_dir, LATENCY_THROUGHPUT + suffix)
        plt.close(fig)
    return paths


def render_knee_plots(doc: dict[str, Any], out_dir: Path, level: str = "batch size"
                      ) -> tuple[list[Path], str]:
    """Write both plots as PNG and SVG into ``out_dir``; returns (paths, note for the report).
    `level` names the swept quantity in titles and axes (a server's load: "concurrency")."""
    plt = _load_pyplot()
    if plt is None:
        return [], PLOT_HINT
    sweeps = [s for s in doc["sweeps"] if _ok_points(s)]
    if not sweeps:
        return [], "plots skipped: no sweep has an ok point"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = _latency_throughput_plots(plt, sweeps, level, out_dir)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for sweep in sweeps:
        _plot_latency_batch(ax, sweep)
    ax.set_xscale("log", base=2)
    batches = sorted({p["batch_size"] for s in sweeps for p in s["points"]})
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel(f"{level} (log2)")
    ax.set_ylabel("per-request latency, E2E (ms)")
    ax.set_title(f"Latency percentiles vs {level}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    paths += _save(fig, out_dir, LATENCY_BATCH)
    plt.close(fig)
    return paths, ""

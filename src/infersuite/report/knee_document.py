"""knee.json (schema infersuite.knee/1) → terminal tables and knee.md; atomic saving.

Times are stored in seconds; tables show milliseconds.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infersuite.atomic import write_text_atomic
from infersuite.documents import DocumentError, parse_document, read_text
from infersuite.report.knee_plots import is_speech, render_knee_plots, throughput_of

SCHEMA = "infersuite.knee/1"
REQUIRED = {"sweeps": list}  # what every reader needs; concurrency etc. are optional


class KneeDocumentError(DocumentError):
    """A knee.json that cannot be used; the message names the path and the problem."""


def _knee_error(path: Path) -> Callable[[str], KneeDocumentError]:
    return lambda problem: KneeDocumentError(
        f"{path}: {problem} (expected a knee.json written by an infersuite knee sweep)")


def load_knee_document(path: Path) -> dict[str, Any]:
    """Read and check a knee.json; KneeDocumentError says what is wrong."""
    return parse_document(read_text(path, _knee_error(path)), SCHEMA, REQUIRED,
                          _knee_error(path))


def _ms(value: object) -> str:
    return "-" if value is None else f"{float(value) * 1e3:.2f}"  # type: ignore[arg-type]


def _pct(value: object) -> str:
    return "-" if value is None else f"{float(value) * 100:.1f}%"  # type: ignore[arg-type]


def _num(value: object, digits: int = 1) -> str:
    return "-" if value is None else f"{float(value):,.{digits}f}"  # type: ignore[arg-type]


def _percentile(point: dict[str, Any], label: str) -> dict[str, Any]:
    latency = point.get("latency_s") or {}
    return (latency.get("percentiles") or {}).get(label) or {}


def _p99_cell(point: dict[str, Any]) -> str:
    p99 = _percentile(point, "p99")
    if not p99:
        return "-"
    if p99.get("lower") is None or p99.get("upper") is None:
        return f"{_ms(p99.get('value'))} [n={p99.get('n')}: no interval]"
    return f"{_ms(p99['value'])} [{_ms(p99['lower'])}, {_ms(p99['upper'])}]"


def describe_workload(sweep: dict[str, Any]) -> str:
    if is_speech(sweep):
        return (f"a {sweep['clip_s']:g} s clip per request through feature extraction, "
                f"encoder and {sweep['new_tokens']} decoded tokens")
    return f"prompt {sweep['prompt_tokens']} tokens, {sweep['new_tokens']} new"


def sweep_rows(sweep: dict[str, Any]) -> list[list[str]]:
    rows = []
    for p in sweep["points"]:
        eff = p.get("efficiency") or {}
        timing = [_num(throughput_of(p, sweep)), _num(p.get("requests_per_s"), 2)]
        if is_speech(sweep):
            rows.append([str(p["batch_size"]), p["status"], str(p.get("rounds", 0)),
                         _ms(_percentile(p, "p50").get("value")), _p99_cell(p), *timing,
                         _ms(p.get("prefill_s")),
                         _ms(statistics.median(p["decode_step_s"]) if p.get("decode_step_s")
                             else None)])
            continue
        rows.append([
            str(p["batch_size"]), p["status"], str(p.get("rounds", 0)),
            _ms(_percentile(p, "p50").get("value")), _p99_cell(p), *timing,
            _ms(eff.get("decode_step_s_median")), _pct(eff.get("mbu")),
            _ms(eff.get("prefill_s")), _pct(eff.get("mfu")), _energy_cell(p.get("energy")),
        ])
    return rows


def _energy_cell(energy: dict[str, Any] | None) -> str:
    if not energy or energy.get("status") != "ok" or energy.get("joules_per_token") is None:
        return "-"
    return f"{energy['joules_per_token'] * 1e3:.3g} mJ, {energy['avg_power_w']:.0f} W"


SWEEP_HEADERS = ["batch", "status", "rounds", "p50 ms", "p99 ms [95% CI]", "tok/s", "req/s",
                 "decode step ms", "MBU", "prefill ms", "MFU", "energy/token, power"]
SPEECH_HEADERS = ["batch", "status", "rounds", "p50 ms", "p99 ms [95% CI]", "audio s/s",
                  "req/s", "first token ms", "decode step ms"]


def sweep_headers(sweep: dict[str, Any]) -> list[str]:
    return SPEECH_HEADERS if is_speech(sweep) else SWEEP_HEADERS


def energy_reason(sweep: dict[str, Any]) -> list[str]:
    """Why the sweep has no energy figures, once (nothing when it has them)."""
    from infersuite.measure.energy import describe_energy

    energy = next((p["energy"] for p in sweep["points"] if p.get("energy")), None)
    return [] if energy is None or energy.get("status") == "ok" else [describe_energy(energy)]


def knee_lines(sweep: dict[str, Any]) -> list[str]:
    """The knees in the order of docs/knee.md, then warnings."""
    knee = sweep["knee"]
    slo, power, fit, kneedle = knee["slo_knee"], knee["power_knee"], knee["fit"], knee["kneedle"]
    slo_detail = slo.get("detail") or {}
    lines = [
        f"SLO knee: batch {slo['batch_size']}"
        + (f" (p99 upper <= SLO {_ms(slo_detail.get('slo'))} ms; "
           f"{slo_detail.get('slo_source')})" if slo_detail else " (no batch meets the SLO)"),
        f"power knee: batch {power['batch_size']} (argmax throughput / p50 latency)",
        f"saturation fit: {_describe_fit(fit)}",
        f"kneedle (diagnostic): batch {kneedle.get('batch_size')}"
        + (" -- disagrees with the power knee" if kneedle.get("disagrees") else "")
        + (f" ({kneedle['note']})" if kneedle.get("note") else ""),
    ]
    return lines + [f"warning: {w}" for w in knee.get("warnings", [])]


def _describe_fit(fit: dict[str, Any]) -> str:
    if fit.get("status") != "ok":
        return f"{fit.get('status')}: {fit.get('reason', '')}"
    params = ", ".join(f"{k}={v:.4g}" for k, v in (fit.get("params") or {}).items()
                       if isinstance(v, (int, float)))
    r2 = fit.get("r2")
    if r2 is None:
        return str(fit.get("model"))
    return f"{fit.get('model')} ({params}; R²={r2:.3f})"


def calibration_line(cal: dict[str, Any]) -> str:
    return (f"calibration on {cal['device']}: {cal['flops_per_s'] / 1e9:,.1f} GFLOP/s "
            f"({cal['gemm_dtype']} GEMM n={cal['gemm_n']}), {cal['bytes_per_s'] / 1e9:,.2f} GB/s "
            f"(copy, read+write)")


def concurrency_rows(conc: dict[str, Any]) -> list[list[str]]:
    rows = []
    for p in conc["points"]:
        rows.append([_num(p["rate_per_s"], 2), p["status"], str(p.get("requests", 0)),
                     _ms(_percentile(p, "p50").get("value")), _p99_cell(p),
                     _num(p.get("tokens_per_s")), _num(p.get("requests_per_s"), 2),
                     _num(p.get("mean_batch_size"), 2)])
    return rows


CONCURRENCY_HEADERS = ["rate req/s", "status", "requests", "p50 ms", "p99 ms [95% CI]",
                       "tok/s", "req/s", "mean batch"]


def render_knee_terminal(doc: dict[str, Any]) -> str:
    from tabulate import tabulate

    out: list[str] = []
    for sweep in doc["sweeps"]:
        out.append(f"batch sweep {sweep['id']} ({sweep['device_name']}; "
                   f"{describe_workload(sweep)})")
        out.append(tabulate(sweep_rows(sweep), sweep_headers(sweep), tablefmt="simple",
                            disable_numparse=True))
        out += knee_lines(sweep)
        out += [calibration_line(sweep["calibration"])] if sweep.get("calibration") else []
        out += energy_reason(sweep)
    for conc in doc.get("concurrency", []):
        out.append(f"concurrency sweep {conc['id']}: {conc['driver']}")
        out.append(tabulate(concurrency_rows(conc), CONCURRENCY_HEADERS, tablefmt="simple",
                            disable_numparse=True))
    return "\n".join(out)


def render_knee_markdown(doc: dict[str, Any], plots: list[str], plot_note: str) -> str:
    from tabulate import tabulate

    out = ["# Knee report", "", f"schema `{doc['schema']}`, created {doc['created_utc']}", ""]
    for sweep in doc["sweeps"]:
        out += [f"## Batch sweep: {sweep['id']}", "",
                f"{sweep['device_name']}; {describe_workload(sweep)}; latency = E2E of the "
                "whole batch (every request finishes with its batch).", "",
                tabulate(sweep_rows(sweep), sweep_headers(sweep), tablefmt="github",
                         disable_numparse=True), ""]
        out += [f"- {line}" for line in knee_lines(sweep)]
        out += [f"- {calibration_line(sweep['calibration'])}"] if sweep.get("calibration") \
            else []
        out += [*(f"- {line}" for line in energy_reason(sweep)), ""]
    for conc in doc.get("concurrency", []):
        out += [f"## Concurrency sweep: {conc['id']}", "", conc["driver"], "",
                tabulate(concurrency_rows(conc), CONCURRENCY_HEADERS, tablefmt="github",
                         disable_numparse=True), ""]
    out += ["## Plots", ""]
    out += [f"![{Path(p).stem}]({Path(p).name})" for p in plots if p.endswith(".png")]
    if plot_note:
        out.append(plot_note)
    return "\n".join(out) + "\n"


def save_knee_report(report_dir: Path, doc: dict[str, Any]) -> list[Path]:
    """knee.json, the plots (when matplotlib is there) and knee.md; returns the paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    plots, note = render_knee_plots(doc, report_dir)
    doc = {**doc, "plots": [Path(p).name for p in plots]}
    json_path, md_path = report_dir / "knee.json", report_dir / "knee.md"
    write_text_atomic(json_path, json.dumps(doc, indent=1, default=str) + "\n")
    write_text_atomic(md_path, render_knee_markdown(doc, [str(p) for p in plots], note))
    return [json_path, md_path, *plots]

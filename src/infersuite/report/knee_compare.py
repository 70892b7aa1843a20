"""Side-by-side knee results of several devices (knee.json docs) as text tables.

Two questions, kept apart: "faster card" (raw latency and throughput at the batch sizes
all devices ran) and "better use of the card" (calibration peaks and MBU/MFU against them).
Speech sweeps (a clip per request, throughput in audio seconds/s) get tables of their own:
their throughput is not comparable with a text model's, and they have no roofline figures.
"""

from __future__ import annotations

from typing import Any

from infersuite.report.knee_document import SCHEMA
from infersuite.report.knee_plots import is_speech, throughput_of


def is_knee_document(doc: object) -> bool:
    """True for a knee.json document (schema infersuite.knee/1)."""
    return isinstance(doc, dict) and doc.get("schema") == SCHEMA


def _sweeps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, doc in enumerate(docs):
        if not is_knee_document(doc):
            raise ValueError(f"document {i}: schema {doc.get('schema')!r}, expected {SCHEMA!r}; "
                             "pass knee.json files written by the knee sweep")
        out += doc["sweeps"]
    return out


def _label(sweep: dict[str, Any]) -> str:
    return f"{sweep.get('device_name')} {sweep.get('model')}-{sweep.get('dtype')}"


def _ok_by_batch(sweep: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["batch_size"]: p for p in sweep["points"] if p.get("status") == "ok"}


def _p(point: dict[str, Any], label: str) -> str:
    value = ((point.get("latency_s") or {}).get("percentiles") or {}).get(label, {}).get("value")
    return "-" if value is None else f"{value * 1e3:.2f}"


def _num(value: Any, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value / scale:,.{digits}f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _raw_rows(sweeps: list[dict[str, Any]], batches: list[int]) -> list[list[str]]:
    rows = []
    for batch in batches:
        for sweep in sweeps:
            p = _ok_by_batch(sweep)[batch]
            rows.append([str(batch), _label(sweep), _p(p, "p50"), _p(p, "p99"),
                         _num(throughput_of(p, sweep)), _num(p.get("requests_per_s"), digits=2)])
    return rows


def _efficiency_rows(sweeps: list[dict[str, Any]], batches: list[int]) -> list[list[str]]:
    rows = []
    for batch in batches:
        for sweep in sweeps:
            eff = _ok_by_batch(sweep)[batch].get("efficiency") or {}
            rows.append([str(batch), _label(sweep), _pct(eff.get("mbu")), _pct(eff.get("mfu")),
                         _num(eff.get("decode_bytes_per_s"), 1e9, 2),
                         _num(eff.get("prefill_flops_per_s"), 1e9, 2)])
    return rows


def _calibration_rows(sweeps: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for sweep in sweeps:
        cal = sweep.get("calibration") or {}
        rows.append([_label(sweep), _num(cal.get("flops_per_s"), 1e9),
                     str(cal.get("gemm_dtype", "-")), _num(cal.get("bytes_per_s"), 1e9)])
    return rows


def _describe_fit(fit: dict[str, Any]) -> str:
    if fit.get("status") != "ok":
        return str(fit.get("status", "-"))
    params = " ".join(f"{k}={v:.4g}" for k, v in (fit.get("params") or {}).items())
    return f"{fit.get('model')} {params}"


def _knee_rows(sweeps: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for sweep in sweeps:
        knee = sweep.get("knee") or {}
        rows.append([_label(sweep), str((knee.get("slo_knee") or {}).get("batch_size")),
                     str((knee.get("power_knee") or {}).get("batch_size")),
                     _describe_fit(knee.get("fit") or {}),
                     str((knee.get("kneedle") or {}).get("batch_size"))])
    return rows


def _table(rows: list[list[str]], headers: list[str]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers, tablefmt="simple", disable_numparse=True)


KNEE_HEADERS = ["device model", "SLO knee", "power knee", "saturation fit", "kneedle"]


def render_knee_comparison(knee_docs: list[dict[str, Any]]) -> str:
    """Tables comparing the sweeps of ``knee_docs`` (schema infersuite.knee/1)."""
    sweeps = _sweeps(knee_docs)
    if not sweeps:
        return "no sweeps to compare: the knee.json files hold no batch sweep"
    text = [s for s in sweeps if not is_speech(s)]
    speech = [s for s in sweeps if is_speech(s)]
    out = _text_tables(text) if text else []
    if speech:
        out += [*([""] if out else []), "speech sweeps: a clip per request, throughput in "
                "audio seconds per second", *_speech_tables(speech)]
    return "\n".join(out)


def _common_batches(sweeps: list[dict[str, Any]]) -> list[int]:
    return sorted(set.intersection(*(set(_ok_by_batch(s)) for s in sweeps)))


def _text_tables(sweeps: list[dict[str, Any]]) -> list[str]:
    batches = _common_batches(sweeps)
    out = ["calibration, measured in the same run as each sweep",
           _table(_calibration_rows(sweeps), ["device model", "GEMM GFLOP/s", "GEMM dtype",
                                              "copy GB/s"]), ""]
    if batches:
        out += ["faster card — raw times at the batch sizes every device ran "
                "(lower ms, higher tok/s wins)",
                _table(_raw_rows(sweeps, batches),
                       ["batch", "device model", "p50 ms", "p99 ms", "tok/s", "req/s"]), "",
                "better use of the card — efficiency against each card's own calibration "
                "(decode MBU = bytes/step / step time / copy bytes/s; prefill MFU = FLOPs / "
                "time / GEMM FLOP/s)",
                _table(_efficiency_rows(sweeps, batches),
                       ["batch", "device model", "MBU", "MFU", "decode GB/s",
                        "prefill GFLOP/s"]), ""]
    else:
        out += ["no batch size ran ok on every device: nothing to put side by side; "
                "sweep the same batch sizes", ""]
    return [*out, "knees (batch size per method)", _table(_knee_rows(sweeps), KNEE_HEADERS)]


def _speech_tables(sweeps: list[dict[str, Any]]) -> list[str]:
    batches = _common_batches(sweeps)
    raw = (["raw times at the batch sizes every device ran",
            _table(_raw_rows(sweeps, batches),
                   ["batch", "device model", "p50 ms", "p99 ms", "audio s/s", "req/s"])]
           if batches else ["no batch size ran ok on every device"])
    return [*raw, "", "knees (batch size per method)", _table(_knee_rows(sweeps), KNEE_HEADERS)]

"""knee.json/knee.md/plots from a synthetic sweep; without matplotlib the tables still render."""

from __future__ import annotations

import builtins
import json

import pytest

from infersuite.measure.sweep import PointResult
from infersuite.report.knee_compare import render_knee_comparison
from infersuite.report.knee_document import SCHEMA, render_knee_terminal, save_knee_report
from infersuite.report.knee_plots import PLOT_HINT
from infersuite.stats.knee import analyze_sweep


def _sweep(device_name: str, scale: float, batches=(1, 2, 4, 8, 16)) -> dict:
    points = []
    for b in batches:
        # latency flat until 4, then linear: a knee near 4-8
        base = 0.010 * scale * max(1.0, b / 4)
        p = PointResult(b, "ok", 8, [base * (1 + 0.01 * (i % 7)) for i in range(40)])
        p.efficiency = {"mbu": 0.1 * b ** 0.5, "mfu": 0.02 * b, "decode_bytes_per_s": 1e9 * b,
                        "prefill_flops_per_s": 1e10 * b, "decode_step_s_median": 0.001,
                        "prefill_s": 0.002}
        points.append(p)
    points.append(PointResult(32, "oom", 8, note="MemoryError"))
    report = analyze_sweep([p.to_sweep_point() for p in points])
    return {"id": f"tiny-float32-{device_name}", "model": "tiny", "dtype": "float32",
            "device": "cpu", "device_name": device_name, "prompt_tokens": 32, "new_tokens": 8,
            "calibration": {"device": "cpu", "gemm_dtype": "float32", "gemm_n": 1024,
                            "flops_per_s": 3e10 / scale, "bytes_per_s": 6e9 / scale},
            "points": [p.to_dict() for p in points], "knee": report.to_dict()}


def _doc(device_name: str = "cpu-a", scale: float = 1.0) -> dict:
    return {"schema": SCHEMA, "created_utc": "2026-01-01T00:00:00+00:00",
            "sweeps": [_sweep(device_name, scale)], "concurrency": []}


def test_report_files_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    paths = save_knee_report(tmp_path, _doc())
    names = {p.name for p in paths}
    assert {"knee.json", "knee.md", "knee_latency_throughput.png", "knee_latency_throughput.svg",
            "knee_latency_batch.png", "knee_latency_batch.svg"} <= names
    assert all(p.stat().st_size > 1000 for p in paths if p.suffix in (".png", ".svg"))
    doc = json.loads((tmp_path / "knee.json").read_text())
    assert doc["schema"] == SCHEMA
    assert doc["sweeps"][0]["points"][-1]["status"] == "oom"
    md = (tmp_path / "knee.md").read_text()
    assert "![knee_latency_throughput](knee_latency_throughput.png)" in md
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_without_matplotlib_tables_render_and_hint_is_shown(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    paths = save_knee_report(tmp_path, _doc())
    assert {p.name for p in paths} == {"knee.json", "knee.md"}
    md = (tmp_path / "knee.md").read_text()
    assert "pip install infersuite[plots]" in md
    assert PLOT_HINT in md
    assert "| batch" in md  # the sweep table is still there
    terminal = render_knee_terminal(json.loads((tmp_path / "knee.json").read_text()))
    assert "power knee: batch" in terminal
    assert "oom" in terminal


def test_compare_two_synthetic_devices():
    out = render_knee_comparison([_doc("cpu-fast", 1.0), _doc("cpu-slow", 2.0)])
    raw = out.split("faster card")[1].split("better use of the card")[0]
    efficiency = out.split("better use of the card")[1].split("knees")[0]
    assert "cpu-fast tiny-float32" in raw
    assert "cpu-slow tiny-float32" in raw
    assert "10.30" in raw
    assert "20.60" in raw
    assert not any(line.startswith("32 ") for line in raw.splitlines())  # OOM: not common
    assert "%" in efficiency
    assert "%" not in raw
    assert "30.0" in out
    assert "15.0" in out


def test_compare_refuses_other_documents():
    with pytest.raises(ValueError, match=r"infersuite\.knee/1"):
        render_knee_comparison([{"schema": "infersuite.report/1"}])


def _speech_sweep(device_name: str, scale: float) -> dict:
    """A speech sweep: 20 s clips, the round's time flat to batch 2, then linear."""
    points = []
    for b in (1, 2, 4, 8):
        base = 0.1 * scale * max(1.0, b / 2)
        p = PointResult(b, "ok", 16, [base] * 20, prefill_s=0.08 * b,
                        decode_step_s=[0.001, 0.002, 0.003], audio_s=20.0)
        points.append(p)
    report = analyze_sweep([p.to_sweep_point() for p in points])
    return {"id": f"whisper-toy-float32-{device_name}", "model": "whisper-toy",
            "dtype": "float32", "device": "cpu", "device_name": device_name,
            "workload": "speech", "clip_s": 20.0, "new_tokens": 16,
            "throughput_unit": "audio seconds/s",
            "points": [p.to_dict() for p in points], "knee": report.to_dict()}


def test_a_speech_sweep_is_weighed_in_audio_seconds_per_second(tmp_path):
    sweep = _speech_sweep("cpu-a", 1.0)
    by_batch = {p["batch_size"]: p for p in sweep["points"]}
    assert by_batch[1]["audio_s_per_s"] == pytest.approx(200.0)  # 20 s of audio in 0.1 s
    assert by_batch[2]["audio_s_per_s"] == pytest.approx(400.0)
    assert by_batch[8]["audio_s_per_s"] == pytest.approx(400.0)  # 160 s in 0.4 s
    assert sweep["knee"]["power_knee"]["batch_size"] == 2
    doc = {**_doc(), "sweeps": [_sweep("cpu-a", 1.0), sweep]}
    terminal = render_knee_terminal(doc)
    assert ("batch sweep whisper-toy-float32-cpu-a (cpu-a; a 20 s clip per request through "
            "feature extraction, encoder and 16 decoded tokens)") in terminal
    speech = terminal.split("whisper-toy-float32-cpu-a (")[1]
    assert all(word in speech for word in ("audio s/s", "first token ms", "400.0"))
    assert not any(word in speech for word in ("MBU", "calibration"))
    pytest.importorskip("matplotlib")
    names = {p.name for p in save_knee_report(tmp_path, doc)}
    assert {"knee_latency_throughput.png", "knee_latency_throughput_speech.png",
            "knee_latency_batch.png"} <= names


def test_compare_keeps_speech_sweeps_apart_from_text_ones():
    docs = [{**_doc("cpu-fast", 1.0), "sweeps": [_sweep("cpu-fast", 1.0),
                                                 _speech_sweep("cpu-fast", 1.0)]},
            {**_doc("cpu-slow", 2.0), "sweeps": [_sweep("cpu-slow", 2.0),
                                                 _speech_sweep("cpu-slow", 2.0)]}]
    out = render_knee_comparison(docs)
    text, speech = out.split("speech sweeps: a clip per request")
    assert "whisper-toy" not in text
    assert not any(word in speech for word in ("tok/s", "%"))
    assert all(word in speech for word in ("audio s/s", "400.0", "200.0"))  # batch 2 on each
    assert "cpu-slow whisper-toy-float32" in speech

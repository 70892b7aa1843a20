"""`infersuite compare` on knee reports of two devices."""

from __future__ import annotations

import copy
import json

from infersuite.cli import main


def _point(batch: int, p50_s: float, tokens_per_s: float, mbu: float, mfu: float) -> dict:
    return {"batch_size": batch, "status": "ok", "tokens_per_s": tokens_per_s,
            "latency_s": {"percentiles": {"p50": {"value": p50_s}, "p99": {"value": 2 * p50_s}}},
            "efficiency": {"mbu": mbu, "mfu": mfu}}


def _doc(slug: str, scale: float, flops: float) -> dict:
    return {
        "schema": "infersuite.knee/1",
        "fingerprint": {"slug": slug},
        "sweeps": [{
            "model": "gemma3-270m-shape", "dtype": "bfloat16", "device_name": slug,
            "calibration": {"flops_per_s": flops, "bytes_per_s": 3.0e12 / scale},
            "points": [_point(1, 0.010 * scale, 800 / scale, 0.30, 0.01),
                       _point(8, 0.012 * scale, 5000 / scale, 0.55, 0.05),
                       _point(16, 0.020 * scale, 7000 / scale, 0.60, 0.08)],
            "knee": {"slo_knee": {"batch_size": 8}, "power_knee": {"batch_size": 8},
                     "fit": {"status": "ok", "model": "amdahl", "params": {"K": 7.9}}},
        }],
    }


def test_knee_reports_compare_raw_and_efficiency_separately(tmp_path, capsys):
    fast, slow = _doc("nvidia-h200", 1.0, 7.9e14), _doc("nvidia-h100-80gb-hbm3", 1.4, 8.0e14)
    slow["sweeps"][0]["points"].pop()  # batch 16 ran out of memory: not a common size
    paths = []
    for name, doc in (("a", fast), ("b", slow)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    assert main(["compare", *paths]) == 0
    out = capsys.readouterr().out
    assert "faster card — raw times" in out
    assert "better use of the card" in out
    assert "790,000.0" in out  # GEMM GFLOP/s of the H200 doc
    raw = out.split("faster card")[1].split("better use")[0]
    assert "nvidia-h200 gemma3-270m-shape-bfloat16" in raw
    assert "14.00" in raw  # 1.4 x 10 ms at batch 1 on the slower card
    batches = {line.split()[0] for line in raw.splitlines()[3:] if line.strip()}
    assert batches == {"1", "8"}  # batch 16 is not common to both
    efficiency = out.split("better use of the card")[1].split("knees")[0]
    assert "55.0%" in efficiency
    assert "5.0%" in efficiency
    assert "amdahl K=7.9" in out


def test_knee_compare_refuses_the_regression_gate(tmp_path, capsys):
    path = tmp_path / "k.json"
    path.write_text(json.dumps(_doc("cpu-x", 1.0, 1e11)))
    other = tmp_path / "k2.json"
    other.write_text(json.dumps(copy.deepcopy(_doc("cpu-y", 1.0, 1e11))))
    assert main(["compare", "--fail-on-regression", str(path), str(other)]) == 2
    assert "not knee.json" in capsys.readouterr().err

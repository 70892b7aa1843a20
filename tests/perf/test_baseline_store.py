"""Baseline files: round trip, history, atomic writes, clear errors; the device fingerprint."""

from __future__ import annotations

import json
import os

import pytest

from infersuite import atomic
from infersuite.baseline.fingerprint import compute_fingerprint, compute_slug
from infersuite.baseline.store import (
    BASELINE_SCHEMA,
    BaselineError,
    check_same_device,
    load_baseline,
    merge_run,
    save_baseline,
)
from infersuite.measure.records import PerfRecord

FP = {"slug": "cpu-test-2c", "versions": {"torch": "2.13"}, "git_commit": "abc"}


def _record(name: str, samples: list[float]) -> PerfRecord:
    return PerfRecord(name=name, fullname=f"suite/x.py::{name}", primary="e2e_s",
                      metrics={"e2e_s": samples, "ttft_s": [s / 2 for s in samples]})


def test_save_load_round_trip(tmp_path):
    path = tmp_path / "b.json"
    save_baseline(path, merge_run(None, [_record("t", [1.0, 2.0, 3.0])], FP))
    data = load_baseline(path)
    entry = data["benchmarks"]["suite/x.py::t"]
    assert data["schema"] == BASELINE_SCHEMA
    assert data["fingerprint"]["slug"] == "cpu-test-2c"
    assert entry["samples"] == [1.0, 2.0, 3.0]
    assert entry["metric"] == "e2e_s"
    assert entry["runs"][0]["median"] == 2.0
    assert entry["runs"][0]["n"] == 3


def test_append_keeps_history_up_to_the_limit(tmp_path):
    path = tmp_path / "b.json"
    data = None
    for i in range(4):
        data = merge_run(data, [_record("t", [1.0 + i, 2.0 + i])], FP, history_limit=3)
        save_baseline(path, data)
        data = load_baseline(path)
    entry = data["benchmarks"]["suite/x.py::t"]
    assert [r["median"] for r in entry["runs"]] == [2.5, 3.5, 4.5]
    assert entry["samples"] == [4.0, 5.0]  # the latest run's raw samples


def test_merge_does_not_modify_the_loaded_baseline():
    first = merge_run(None, [_record("t", [1.0, 2.0])], FP)
    snapshot = json.dumps(first)
    merge_run(first, [_record("t", [5.0, 6.0])], FP)
    assert json.dumps(first) == snapshot


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch, failing):
    path = tmp_path / "b.json"
    save_baseline(path, merge_run(None, [_record("t", [1.0, 2.0])], FP))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(atomic.os, failing, boom)
    with pytest.raises(OSError, match="simulated"):
        save_baseline(path, merge_run(load_baseline(path), [_record("t", [9.0, 9.5])], FP))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["b.json"]  # no temp file left behind


@pytest.mark.parametrize(("content", "problem"), [
    ("", "empty"),
    ('{"schema": "infersuite.baseline/1", "benchm', "not valid JSON"),
    ('{"schema": "infersuite.baseline/0", "fingerprint": {"slug": "x"}, "benchmarks": {}}',
     "schema is 'infersuite.baseline/0'"),
    ('[1, 2]', "not a JSON object"),
    ('{"schema": "infersuite.baseline/1", "benchmarks": {}}', "fingerprint"),
    ('{"schema": "infersuite.baseline/1", "fingerprint": {"slug": "x"}, '
     '"benchmarks": {"t": {"samples": ["a"], "runs": []}}}', "finite numbers"),
])
def test_bad_baseline_files_give_clear_errors(tmp_path, content, problem):
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(BaselineError, match=problem) as info:
        load_baseline(path)
    assert str(path) in str(info.value)
    assert "left untouched" in str(info.value)


def test_missing_baseline_says_how_to_create_one(tmp_path):
    with pytest.raises(BaselineError, match="--infer-save-baseline"):
        load_baseline(tmp_path / "nope.json")


def test_other_device_is_refused_with_a_remedy(tmp_path):
    data = merge_run(None, [_record("t", [1.0, 2.0])], {**FP, "slug": "nvidia-h100-80gb-hbm3"})
    with pytest.raises(BaselineError, match="--infer-baseline-any-device"):
        check_same_device(tmp_path / "b.json", data, FP)
    check_same_device(tmp_path / "b.json", data, {**FP, "slug": "nvidia-h100-80gb-hbm3"})


def test_fingerprint_has_a_stable_slug_and_tolerates_no_git(tmp_path):
    first = compute_fingerprint(root=tmp_path)
    assert first["slug"] == compute_fingerprint(root=tmp_path)["slug"]
    assert first["slug"].startswith("cpu-")
    assert first["slug"].endswith(f"-{first['cpu']['cores']}c")
    assert first["git_commit"] is None  # tmp_path is not a repository
    assert {"torch", "transformers", "onnxruntime"} <= set(first["versions"])


def test_gpu_slug():
    gpu = {"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 85 * 2**30}
    assert compute_slug("x", 16, gpu) == "nvidia-h100-80gb-hbm3"
    assert compute_slug("x", 16, {"name": "NVIDIA H200", "memory_bytes": 141 * 2**30}) == \
        "nvidia-h200-141gb"
    assert compute_slug("AMD EPYC 7B13 64-Core Processor", 2, None) == "cpu-amd-epyc-7b13-2c"


def test_fingerprint_records_tf32_and_sdpa_backends():
    """TF32 and the SDPA backends change a GPU's float32 results and speed: both are in
    the fingerprint, and flipping them shows there."""
    import torch

    from infersuite.baseline.fingerprint import compute_fingerprint

    matmul = torch.backends.cuda.matmul
    tf32, flash = matmul.allow_tf32, torch.backends.cuda.flash_sdp_enabled()
    try:
        matmul.allow_tf32 = False
        torch.backends.cuda.enable_flash_sdp(True)
        before = compute_fingerprint()["torch_settings"]
        matmul.allow_tf32 = True
        torch.backends.cuda.enable_flash_sdp(False)
        after = compute_fingerprint()["torch_settings"]
    finally:
        matmul.allow_tf32 = tf32
        torch.backends.cuda.enable_flash_sdp(flash)
    assert (before["tf32_matmul"], before["float32_matmul_precision"]) == (False, "highest")
    assert (after["tf32_matmul"], after["float32_matmul_precision"]) == (True, "high")
    assert "flash" in before["sdpa_backends_enabled"]
    assert "flash" not in after["sdpa_backends_enabled"]


def test_noise_above_the_threshold_makes_unchanged_inconclusive():
    """Same samples both sides. Six tight baseline runs (1% scatter) rule a 5% change out:
    unchanged. Four runs scattered by about 6% cannot, so the gate says inconclusive, not
    unchanged, and says why."""
    from infersuite.baseline.gate import compute_gate

    samples = [0.0100 + 0.00001 * i for i in range(40)]  # median 0.0102
    current = {"k": ("t", "e2e_s", samples)}
    tight = [0.0102, 0.0103, 0.0102, 0.0101, 0.0102, 0.0103]
    scattered = [0.0100, 0.0108, 0.0093, 0.0104]
    [quiet] = compute_gate({"k": samples}, current, {"k": tight}, 0.05).rows
    [noisy] = compute_gate({"k": samples}, current, {"k": scattered}, 0.05).rows
    assert quiet.status == "unchanged", quiet.reason
    assert noisy.status == "inconclusive", noisy.reason
    assert "4 baseline runs: the interval is wider than the 5% question" in noisy.reason

"""The format library: corrupt-file errors, quantization bounds, quality metrics, faults."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
import torch

from infersuite.conformance.compare import ConformanceError
from infersuite.conformance.quality import (
    compute_kl_divergence,
    compute_quality,
    compute_sqnr_db,
    compute_top1_agreement,
)
from infersuite.formats.checks import check_tensors_bit_exact, check_within_bound
from infersuite.formats.errors import FormatError
from infersuite.formats.safetensors_io import (
    load_safetensors_dir,
    load_safetensors_file,
    save_safetensors_file,
)
from infersuite.models.loader import ModelLoadError

TENSORS = {"a.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
           "b.bias": torch.ones(5, dtype=torch.bfloat16)}


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_safetensors_file(TENSORS, path)
    return path


def _rewrite_header(path, edit) -> None:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n
    text = text.ljust(n)  # same length keeps the data in place
    path.write_bytes(raw[:8] + text + raw[8 + n:])


def test_round_trip_is_bit_exact(good_file):
    loaded = load_safetensors_file(good_file)
    assert check_tensors_bit_exact(loaded, TENSORS, "round trip", {}) == 2


def test_truncated_file_names_file_and_problem(good_file):
    good_file.write_bytes(good_file.read_bytes()[:-10])
    with pytest.raises(FormatError, match=r"model\.safetensors: header accounts for 58 data "
                                          r"bytes but the file holds 48; the file is truncated"):
        load_safetensors_file(good_file)


def test_header_lying_about_offsets(good_file):
    _rewrite_header(good_file, lambda h: h["a.weight"].update(data_offsets=[0, 40]))
    with pytest.raises(FormatError, match=r"tensor 'a.weight': header says F32 \[3, 4\] = 48 "
                                          r"bytes but data_offsets \[0, 40\) span 40"):
        load_safetensors_file(good_file)


def test_header_lying_about_dtype(good_file):
    _rewrite_header(good_file, lambda h: h["a.weight"].update(dtype="F16"))
    with pytest.raises(FormatError, match=r"'a.weight': header says F16 \[3, 4\] = 24 bytes"):
        load_safetensors_file(good_file)


def test_unknown_dtype_and_garbage(good_file, tmp_path):
    _rewrite_header(good_file, lambda h: h["a.weight"].update(dtype="Q9"))
    with pytest.raises(FormatError, match="unknown dtype 'Q9'"):
        load_safetensors_file(good_file)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"\x01\x02")
    with pytest.raises(FormatError, match="too short"):
        load_safetensors_file(tiny)


def test_missing_shard_names_index_and_shard(tmp_path):
    shard = tmp_path / "model-00001.safetensors"
    save_safetensors_file({"a.weight": TENSORS["a.weight"]}, shard)
    index = {"metadata": {}, "weight_map": {"a.weight": "model-00001.safetensors",
                                            "b.bias": "model-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    expected = r"index\.json: names shard\(s\) model-00002\.safetensors that are not in .*'b\.bias'"
    with pytest.raises(ModelLoadError, match=expected):
        load_safetensors_dir(tmp_path)


def test_perturbed_weight_fails_with_location():
    """Fault: a loader that perturbs one weight by one ulp-ish step."""
    perturbed = {k: v.clone() for k, v in TENSORS.items()}
    perturbed["a.weight"][2, 1] += 1e-6
    with pytest.raises(ConformanceError, match=r"tensor 'a.weight': 1/12 elements differ, first "
                                               r"at index \(2, 1\).*max abs diff 9\.5\d*e-07"):
        check_tensors_bit_exact(perturbed, TENSORS, "safetensors save -> load", {"model": "m"})


def test_dtype_change_fails():
    changed = {**TENSORS, "b.bias": TENSORS["b.bias"].float()}
    with pytest.raises(ConformanceError, match=r"'b.bias': got torch.float32 \(5,\), expected "
                                               r"torch.bfloat16"):
        check_tensors_bit_exact(changed, TENSORS, "round trip", {})


def test_quality_metrics_known_values():
    ref = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    same = compute_quality(ref, ref)
    assert same.kl_divergence == 0.0
    assert math.isinf(same.sqnr_db)
    assert same.top1_agreement == 1
    test = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    p = torch.softmax(torch.tensor([2.0, 0.0], dtype=torch.float64), -1)
    expected_kl = float((p * (p.log() - p.flip(0).log())).sum()) / 2
    assert compute_kl_divergence(ref, test) == pytest.approx(expected_kl)
    assert compute_sqnr_db(ref, test) == pytest.approx(10 * math.log10(4 / 8))
    assert compute_top1_agreement(ref, test) == 0.5


gguf = pytest.importorskip("gguf")
from infersuite.formats.gguf_io import permute_qk, unpermute_qk  # noqa: E402
from infersuite.formats.quant_bounds import (  # noqa: E402
    compute_quant_bound,
    find_requantize_mismatch,
)

Q = gguf.GGMLQuantizationType


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0])
def test_gguf_quant_within_bound_and_tight(qtype):
    source = np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32)
    stored = gguf.quants.quantize(source, qtype)
    got = gguf.quants.dequantize(stored, qtype)
    bound = compute_quant_bound(source, qtype)
    ratio = np.abs(got - source) / bound
    assert ratio.max() <= 1.0
    assert ratio.max() > 0.8  # the bound is not loose
    assert find_requantize_mismatch(stored, qtype) is None


def test_gguf_wrong_scale_fails_bound():
    """Fault: a Q8_0 quantizer whose scale is max|x|/100 instead of /127."""
    source = np.random.default_rng(1).normal(size=(4, 32)).astype(np.float32)
    d = np.abs(source).max(axis=1, keepdims=True) / 100
    q = np.clip(np.round(source / d), -127, 127).astype(np.int8)
    wrong = np.concatenate([d.astype(np.float16).view(np.uint8), q.view(np.uint8)], axis=1)
    got = gguf.quants.dequantize(wrong, Q.Q8_0)
    with pytest.raises(ConformanceError, match=r"Q8_0 weights: max abs error .* exceeds its "
                                               r"bound"):
        check_within_bound(torch.from_numpy(got), torch.from_numpy(source),
                           torch.from_numpy(compute_quant_bound(source, Q.Q8_0)),
                           "Q8_0 weights", {"tensor": "t"})


def test_qk_permutation_inverts():
    w = np.arange(64 * 8, dtype=np.float32).reshape(64, 8)
    assert not np.array_equal(permute_qk(w, 4), w)
    assert np.array_equal(unpermute_qk(permute_qk(w, 4), 4), w)

"""`infersuite runtimes`: its variants, its statistics, and the command end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from infersuite.cli import main
from infersuite.cli.runtimes import parse_variants
from infersuite.measure.timing import time_interleaved
from infersuite.report.runtimes import compute_agreement, compute_speedup, judge_claim

needs_openvino = pytest.mark.skipif(
    __import__("importlib").util.find_spec("nncf") is None,
    reason="openvino and nncf not installed (pip install 'infersuite[openvino]')")


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Building a torch variant sets torch's thread count for the process: restore it."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _tiny_inputs(tmp_path):
    """A Whisper encoder small enough for a test: 2 layers, d_model 64, 100 frames."""
    import torch
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from infersuite.engines.module_variants import Inputs

    config = WhisperConfig(d_model=64, encoder_layers=2, encoder_attention_heads=4,
                           encoder_ffn_dim=128, num_mel_bins=16, max_source_positions=50)
    torch.manual_seed(0)
    module = WhisperEncoder(config).eval()
    rng = np.random.default_rng(0)
    example = rng.normal(size=(1, 16, 100)).astype(np.float32)
    calibration = [rng.normal(size=(1, 16, 100)).astype(np.float32) for _ in range(2)]
    return Inputs(module, example, calibration, tmp_path, 1)


def test_agreement_locates_a_planted_difference():
    rng = np.random.default_rng(1)
    expected = rng.normal(size=(2, 30, 8))
    actual = expected.copy()
    actual[1, 17, 3] += 0.25
    got = compute_agreement(actual, expected)
    assert got["max_abs_diff"] == pytest.approx(0.25)
    assert got["worst_position"] == [1, 17]
    assert got["cosine_min"] < 0.999
    same = compute_agreement(expected, expected)  # negative control
    assert same["max_abs_diff"] == 0.0
    assert same["cosine_min"] == pytest.approx(1.0)


def test_speedup_of_a_planted_twice_as_fast_variant_and_the_claim_rule():
    rng = np.random.default_rng(2)
    slow = (0.1 * np.exp(rng.normal(0, 0.02, 40))).tolist()
    fast = [t / 2 * math.exp(rng.normal(0, 0.01)) for t in slow]
    got = compute_speedup(slow, fast)
    assert got["lower"] < 2.0 < got["upper"]
    assert got["upper"] - got["lower"] < 0.05
    assert judge_claim(got, 2.0) == "undecided"
    assert judge_claim(got, 1.5) == "held"
    assert judge_claim(got, 5.0) == "did not hold"
    same = compute_speedup(slow, slow)  # negative control
    assert same["speedup"] == 1.0


def test_interleaved_rounds_time_each_call_in_a_shuffled_order():
    order: list[str] = []
    clock = iter(range(0, 10**9, 1000))
    calls = {name: (lambda n=name: order.append(n)) for name in "abc"}
    times = time_interleaved(calls, rounds=20, warmup_rounds=1, seed=3,
                             now_ns=lambda: next(clock))
    assert {name: len(samples) for name, samples in times.items()} == dict.fromkeys("abc", 20)
    rounds = [tuple(order[i:i + 3]) for i in range(3, len(order), 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert len(set(rounds)) > 1  # not one fixed order


def test_variants_must_start_with_the_reference_and_be_known():
    assert parse_variants("torch-fp32,openvino-int8") == ["torch-fp32", "openvino-int8"]
    for bad in ("openvino-fp32,torch-fp32", "torch-fp32,tensorrt", "torch-fp32,torch-fp32"):
        with pytest.raises(ValueError, match="--variants"):
            parse_variants(bad)


@needs_openvino
def test_each_runtime_agrees_with_torch_and_reports_what_it_ran(tmp_path):
    from infersuite.engines.module_variants import build_variant

    inputs = _tiny_inputs(tmp_path)
    reference = build_variant("torch-fp32", inputs).run(inputs.example)
    for name, bound in (("onnxruntime-fp32", 1e-4), ("openvino-fp32", 1e-4)):
        variant = build_variant(name, inputs)
        assert variant.precision == "f32"
        assert compute_agreement(variant.run(inputs.example), reference)["max_abs_diff"] < bound
    quantized = build_variant("openvino-int8", inputs)
    assert "i8" in quantized.precision or "u8" in quantized.precision
    assert "u8" in build_variant("openvino-int8w", inputs).details["runtime_precisions"]
    # the quantized graph is not the float one: it differs, and the agreement says so
    assert compute_agreement(quantized.run(inputs.example), reference)["max_abs_diff"] > 1e-4


def test_command_refuses_bad_variants_and_writes_nothing(tmp_path, capsys):
    code = main(["runtimes", "--variants", "openvino-fp32", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "torch-fp32 first" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@needs_openvino
def test_command_end_to_end_on_the_whisper_tiny_shaped_encoder(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["runtimes", "--variants", "torch-fp32,openvino-fp32,openvino-int8",
                 "--rounds", "3", "--warmup", "0", "--calibration", "1", "--threads", "1",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "openvino-int8" in printed
    assert "5x:" in printed
    document = json.loads((out / "runtimes.json").read_text())
    assert document["input"]["shape"] == [1, 80, 3000]
    rows = {row["variant"]: row for row in document["rows"]}
    assert rows["openvino-fp32"]["agreement"]["max_abs_diff"] < 1e-3
    assert rows["openvino-int8"]["claim"]["speedup"] == 5.0
    assert all(len(s) == 3 for s in document["samples_s"].values())
    assert (out / "runtimes.md").read_text().startswith("# Runtimes on ")

"""The speech adapters' arguments: a planted slowdown, and arguments they do not take."""

from __future__ import annotations

import re

import pytest
import torch

from infersuite.engines import asr
from infersuite.engines.base import EngineSpec, EngineUnsupported, parse_engine_spec
from infersuite.models.whisper import build_whisper, get_asr_entry


@pytest.fixture(scope="module")
def toy():
    return build_whisper(get_asr_entry("whisper-toy"))


def test_slowdown_spins_that_fraction_of_each_call(toy, monkeypatch):
    spun: list[float] = []
    monkeypatch.setattr("infersuite.measure.hooks.spin", spun.append)
    engine = asr.create_hf(parse_engine_spec("hf:slowdown=0.5"), toy)
    features = torch.zeros(1, 80, 3000)
    engine.generate_greedy(features, engine.prompt(1), 3)
    assert len(spun) == 1 + 3  # the encoder, then each decoder step
    assert all(s > 0 for s in spun)
    plain = asr.create_hf(EngineSpec("hf"), toy)  # control: nothing planted
    spun.clear()
    plain.generate_greedy(features, plain.prompt(1), 3)
    assert spun == []


@pytest.mark.parametrize(("spec", "said"), [
    ("hf:attention=eager", "does not take attention (it takes slowdown=)"),
    ("onnxruntime:opt=all", "does not take opt (it takes threads=, weights=)"),
    ("openvino:activations=int8",
     "does not take activations (it takes precision=, threads=, weights=)"),
])
def test_arguments_a_speech_adapter_does_not_take_skip_with_the_reason(toy, spec, said):
    with pytest.raises(EngineUnsupported, match=re.escape(said)):
        asr.ASR_ENGINES[spec.split(":")[0]](parse_engine_spec(spec), toy)


def test_plant_slowdown_reaches_the_speech_cases(pytester):
    pytester.makepyfile(test_planted="""
        def test_planted(asr_case):
            assert asr_case.engine.slowdown == 0.25
            assert asr_case.reference.slowdown == 0.0
    """)
    pytester.runpytest("-p", "no:cacheprovider", "--infer-plant-slowdown",
                       "0.25").assert_outcomes(passed=1)


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_a_bad_weights_argument_says_what_is_expected(toy, name):
    from infersuite.engines.base import EngineError

    with pytest.raises(EngineError, match=r"weights='int4'; expected f32 or int8"):
        asr.ASR_ENGINES[name](parse_engine_spec(f"{name}:weights=int4"), toy)


def test_8_bit_speech_engines_hold_8_bit_weights(toy):
    """weights=int8 is really 8-bit: integer MatMuls in every onnxruntime graph, 8-bit
    weight constants in every OpenVINO one (an engine without them refuses to build)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("nncf")
    ort = asr.ASR_ENGINES["onnxruntime"](parse_engine_spec("onnxruntime:weights=int8"), toy)
    assert ort.precision == "int8-dynamic"
    assert all(int(n) > 0 for n in ort.info["int8_matmuls"].split("+"))
    ov = asr.ASR_ENGINES["openvino"](parse_engine_spec("openvino:weights=int8"), toy)
    assert ov.precision == "INT8_ASYM"
    assert all(int(n) > 0 for n in ov.info["int8_weight_constants"].split("+"))

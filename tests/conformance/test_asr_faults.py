"""The speech checks catch planted faults in a real Whisper stack, and pass without them.

Each fault patches the transformers-backed speech engine (engines/asr.py) in a pytester
conftest and runs the real suite module on whisper-toy: the named test must fail and its
message must say where and by how much; the unpatched run is the negative control.
"""

from __future__ import annotations

import re

import pytest

# Imported here first: in-process pytester runs restore sys.modules afterwards.
import infersuite.engines.asr
import infersuite.plugin.asr  # noqa: F401

IMPORTS = """
from infersuite.engines import asr, asr_onnx
"""

PATCHES = {
    # An encoder whose states leak across the batch (a batch-wide normalization).
    "encoder_batch_leak": """
        encode = asr.HfAsrEngine.encode
        def leaky(self, features):
            states = encode(self, features)
            return states + 1e-2 * states.mean(0, keepdim=True)
        patch(asr.HfAsrEngine, "encode", leaky)
    """,
    # A self-attention cache that loses its last position before every cached step.
    "cache_drops_a_position": """
        step = asr.HfAsrEngine.step
        def forgetful(self, states, ids, cache):
            if cache.self_attention_cache.get_seq_length() > 1:
                for layer in cache.self_attention_cache.layers:
                    layer.keys, layer.values = layer.keys[:, :, :-1], layer.values[:, :, :-1]
            return step(self, states, ids, cache)
        patch(asr.HfAsrEngine, "step", forgetful)
    """,
    # Cross-attention over another clip's encoder states when batched.
    "cross_attention_wrong_clip": """
        step = asr.HfAsrEngine.step
        def crossed(self, states, ids, cache):
            if states.shape[0] > 1 and cache.get_seq_length() == 0:
                states = states.roll(1, dims=0)
            return step(self, states, ids, cache)
        patch(asr.HfAsrEngine, "step", crossed)
    """,
    # A second engine whose encoder is 0.1% off the reference's.
    "engine_off_reference": """
        class Off(asr.HfAsrEngine):
            name = "onnxruntime"
            def encode(self, features):
                return super().encode(features) * 1.001
        patch(asr, "ASR_ENGINES", {**asr.ASR_ENGINES,
                                   "onnxruntime": lambda spec, model: Off(spec, model)})
    """,
    # onnxruntime's step graph fed a self-attention cache one position short.
    "onnx_step_cache_off_by_one": """
        init = asr_onnx.GraphAsrEngine.__init__
        class Short:
            def __init__(self, session):
                self.session = session
            def run(self, names, feed):
                feed = {k: v[:, :, :-1] if k.startswith("past_") and v.shape[2] > 1 else v
                        for k, v in feed.items()}
                return self.session.run(names, feed)
        def shortened(self, spec, config, sessions, info, folder):
            init(self, spec, config, sessions, info, folder)
            self.sessions["decoder_step"] = Short(sessions["decoder_step"])
        patch(asr_onnx.GraphAsrEngine, "__init__", shortened)
    """,
    # Batches above three rows split into sub-batches that come back in the wrong order
    # (only the chunked check decodes four windows at once).
    "sub_batches_out_of_order": """
        import torch
        decode = asr.HfAsrEngine.decode_greedy
        def split(self, states, prompt, n_new, on_token=None):
            if states.shape[0] <= 3:
                return decode(self, states, prompt, n_new, on_token)
            parts = [decode(self, states[i:i + 3], prompt[i:i + 3], n_new, on_token)
                     for i in range(0, states.shape[0], 3)][::-1]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        patch(asr.HfAsrEngine, "decode_greedy", split)
    """,
    # The control for the above: the same second engine, exact.
    "engine_exact": """
        patch(asr, "ASR_ENGINES", {**asr.ASR_ENGINES,
                                   "onnxruntime": lambda spec, model: asr.HfAsrEngine(spec, model)})
    """,
}

HF = "[whisper-toy-float32-cpu-hf]"
ORT = "[whisper-toy-float32-cpu-onnxruntime]"
# the reference is transformers' engine: a fault planted in it also moves the reference,
# so onnxruntime's check against the reference fails with it (its message is not checked)
AGAINST_FAULTY_REFERENCE = {f"test_asr_engine_matches_reference{ORT}": None,
                            f"test_asr_chunked_long_audio_matches_reference{ORT}": None}
CHUNKED = "test_asr_chunked_long_audio_matches_reference"

# fault -> exactly the tests that must fail, each with a pattern its message must match
EXPECTED: dict[str, dict[str, str | None]] = {
    "encoder_batch_leak": {
        f"test_asr_encoder_independent_of_batch_companions{HF}":
            r"encoder states in a batch of 3 vs alone: max abs diff \S+ exceeds .* at row=0, "
            r"position=\d+, channel=\d+.*clip=0",
        f"test_asr_batched_decoding_matches_solo{HF}": r"batch of 3 vs alone: step logits",
        f"{CHUNKED}{HF}": r"chunked window vs the reference: step logits",
        **AGAINST_FAULTY_REFERENCE,
    },
    "cache_drops_a_position": {
        f"test_asr_cached_decoder_matches_full_recompute{HF}":
            r"cached decoding vs full recompute: step logits: max abs diff \S+ .* at step=\d+, "
            r"vocab=\d+",
        **AGAINST_FAULTY_REFERENCE,
    },
    "cross_attention_wrong_clip": {
        f"test_asr_cached_decoder_matches_full_recompute{HF}": r"cached decoding vs full recompute",
        f"test_asr_batched_decoding_matches_solo{HF}": r"batch of 3 vs alone: step logits",
        f"{CHUNKED}{HF}": None,
        # the chunked reference decodes one window at a time: this fault does not reach it
        f"test_asr_engine_matches_reference{ORT}": None,
    },
    "engine_off_reference": {
        f"test_asr_engine_matches_reference{ORT}":
            r"encoder states vs the reference: max abs diff \S+ exceeds tolerance .* at clip=\d",
        f"{CHUNKED}{ORT}": None,
    },
    "onnx_step_cache_off_by_one": {
        f"test_asr_cached_decoder_matches_full_recompute{ORT}":
            r"cached decoding vs full recompute: step logits: max abs diff \S+ .* at step=\d+.*"
            r"engine=onnxruntime",
        f"test_asr_engine_matches_reference{ORT}": r"greedy decoding vs the reference",
        f"{CHUNKED}{ORT}": None,
    },
    "sub_batches_out_of_order": {
        f"{CHUNKED}{HF}":
            r"chunked window vs the reference: step logits: max abs diff \S+ exceeds .* at "
            r"step=\d+, vocab=\d+: .*engine=hf, audio_s=75.0, window=0, span_s=0-30, row=0",
    },
    "engine_exact": {},
}


def _run(pytester, copy_suite_module, patching_conftest, fault):
    copy_suite_module("conformance/test_asr.py")
    pytester.makeconftest(patching_conftest(IMPORTS, PATCHES[fault]))
    return pytester.runpytest("-p", "no:cacheprovider", "--infer-engine", "hf",
                              "--infer-engine", "onnxruntime")


@pytest.mark.parametrize("fault", sorted(PATCHES))
def test_each_planted_fault_fails_its_check_and_only_it(fault, pytester, copy_suite_module,
                                                        patching_conftest, run_outcomes):
    if fault == "onnx_step_cache_off_by_one":
        pytest.importorskip("onnxruntime")
    result = _run(pytester, copy_suite_module, patching_conftest, fault)
    outcomes = run_outcomes(result)
    failed = {nodeid.split("::")[1] for nodeid, got in outcomes.items() if "failed" in got}
    must_fail = EXPECTED[fault]
    assert failed == set(must_fail), result.stdout.str()[-3000:]
    text = result.stdout.str()
    for pattern in must_fail.values():
        assert pattern is None or re.search(pattern, text), (pattern, text[-3000:])
    if fault == "engine_exact":  # negative control: every check of both engines passes
        assert not failed, text
        assert any("onnxruntime" in n and "passed" in o for n, o in outcomes.items())


def test_the_exported_graphs_pass_every_check_on_onnxruntime_and_openvino(
        pytester, copy_suite_module, run_outcomes):
    """Negative control of the runtime faults: the real onnxruntime and OpenVINO speech
    engines (f32 and bf16) pass the speech checks as transformers does."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    copy_suite_module("conformance/test_asr.py")
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-engine", "hf",
                                "--infer-engine", "onnxruntime", "--infer-engine", "openvino",
                                "--infer-engine", "openvino:precision=bf16")
    result.assert_outcomes(passed=19, skipped=1)


def test_an_engine_without_a_speech_adapter_skips_saying_which_have_one(pytester,
                                                                         copy_suite_module):
    copy_suite_module("conformance/test_asr.py")
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-engine", "llama.cpp",
                                "-rs")
    result.assert_outcomes(skipped=5)
    result.stdout.fnmatch_lines(["*engine llama.cpp: no speech-model adapter yet (speech "
                                 "models run on: hf, onnxruntime, openvino)*"])


def test_an_unknown_speech_model_is_a_usage_error(pytester, copy_suite_module):
    copy_suite_module("conformance/test_asr.py")
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-asr-model", "whisper-xl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--infer-asr-model whisper-xl: not a speech model of the "
                                 "checks and timings; expected one of whisper-toy, "
                                 "whisper-tiny-shape (speech-digits, the trained one, is "
                                 "judged by its word error rate in test_asr_wer)*"])
    trained = pytester.runpytest("-p", "no:cacheprovider", "--infer-asr-model", "speech-digits")
    assert trained.ret == pytest.ExitCode.USAGE_ERROR

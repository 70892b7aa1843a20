"""The speech WER check catches planted faults on the trained model, and passes without them.

Each fault patches a speech engine in a pytester conftest and runs the real WER module on
speech-digits's held-out clips; the named case must fail saying by how much and where
(clips, transcripts), and the unpatched engines are the negative control.
"""

from __future__ import annotations

import re

import pytest

import infersuite.engines.asr
import infersuite.plugin.asr  # noqa: F401

IMPORTS = """
from infersuite.engines import asr
REAL = asr.ASR_ENGINES["onnxruntime"]
def replace_ort(int8, engine_class):  # onnxruntime's int8 case, or its float32 one
    def create(spec, model):
        if ("weights" in spec.kwargs) == int8:
            return engine_class(spec, model)
        return REAL(spec, model)
    patch(asr, "ASR_ENGINES", {**asr.ASR_ENGINES, "onnxruntime": create})
"""

PATCHES = {
    # An 8-bit engine that hears every "3" as "8": the WER rises far past the gate.
    "int8_hears_3_as_8": """
        class Deaf(asr.HfAsrEngine):
            precision = "int8-dynamic"
            def decode_greedy(self, states, prompt, n_new, on_token=None):
                tokens, logits = super().decode_greedy(states, prompt, n_new, on_token)
                swapped = logits.clone()
                swapped[..., 11] = logits[..., 6] + 1.0  # "8" above wherever "3" was
                return tokens.where(tokens != 6, 11), swapped
        replace_ort(True, Deaf)
    """,
    # The same 8-bit stand-in, exact: a reduced precision that changes nothing passes.
    "int8_exact": """
        class Exact(asr.HfAsrEngine):
            precision = "int8-dynamic"
        replace_ort(True, Exact)
    """,
    # A float32 engine whose encoder is 1% off: its transcripts may even agree, but its
    # greedy runs leave the float32 tolerance.
    "float32_encoder_off": """
        class Off(asr.HfAsrEngine):
            def encode(self, features):
                return super().encode(features) * 1.01
        replace_ort(False, Off)
    """,
    # transformers itself changed: the reference no longer gives the shipped transcripts.
    # (Rolling the states along positions would not do: cross-attention does not see the
    # order of what it attends to.)
    "reference_moved": """
        encode = asr.HfAsrEngine.encode
        def moved(self, features):
            return 0.5 * encode(self, features)
        patch(asr.HfAsrEngine, "encode", moved)
    """,
}

HF = "test_asr_word_error_rate[speech-digits-float32-cpu-hf]"
INT8 = "test_asr_word_error_rate[speech-digits-float32-cpu-onnxruntime-weights=int8]"
ORT = "test_asr_word_error_rate[speech-digits-float32-cpu-onnxruntime]"
EXPECTED: dict[str, dict[str, str | None]] = {
    "int8_hears_3_as_8": {INT8: r"WER \S+% \(\d+/\d+ words\) is \+\S+ points over transformers "
                                r"float32's .*gate: at most \+2 points; \d+ of 64 transcripts "
                                r"differ from the reference's: clip \d+: truth '[\d ]+', "
                                r"reference '[\d ]+', engine '[\d ]+'"},
    "int8_exact": {},
    "float32_encoder_off": {ORT: r"held-out transcripts vs the reference: step logits: max abs "
                                 r"diff \S+ exceeds tolerance"},
    # the reference is transformers': the exact float32 engine is then judged against a
    # faulty judge and fails with it (its message is not checked); the 8-bit one's WER is
    # not above the faulty reference's, so it passes
    "reference_moved": {HF: r"transformers float32 on speech-digits: \d+ of 64 transcripts "
                            r"differ from golden\.json's: clip \d+: truth '[\d ]+', "
                            r"golden\.json '[\d ]+', transformers now '[\d ]*'",
                        ORT: None},
}


@pytest.mark.parametrize("fault", sorted(PATCHES))
def test_each_planted_fault_fails_its_case_and_only_it(fault, pytester, copy_suite_module,
                                                       patching_conftest, run_outcomes):
    copy_suite_module("conformance/test_asr_wer.py")
    pytester.makeconftest(patching_conftest(IMPORTS, PATCHES[fault]))
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "not openvino")
    outcomes = run_outcomes(result)
    failed = {nodeid.split("::")[1] for nodeid, got in outcomes.items() if "failed" in got}
    ran = {nodeid.split("::")[1] for nodeid in outcomes}
    assert {HF, ORT, INT8} <= ran, result.stdout.str()[-3000:]
    assert failed == set(EXPECTED[fault]), result.stdout.str()[-3000:]
    text = result.stdout.str()
    for pattern in EXPECTED[fault].values():
        assert pattern is None or re.search(pattern, text), (pattern, text[-3000:])
    if fault == "int8_exact":  # negative control: the table has all three, +0.00 points
        result.stdout.fnmatch_lines(["*infersuite speech WER*", "*onnxruntime-weights=int8*"
                                     "int8-dynamic*+0.00*0/64*"])

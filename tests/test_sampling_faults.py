"""Break a sampler warper under the decoding suite: its check must fail and say how."""

from __future__ import annotations

import pytest

# Import what the runs need in this process first: in-process pytester runs restore
# sys.modules afterwards, which would half-unload transformers' lazy modules.
import transformers.generation.logits_process
import transformers.models.llama.modeling_llama  # noqa: F401

RUN_ARGS = ("--infer-model", "llama-tiny", "--infer-device", "cpu", "-p", "no:cacheprovider")
BREAK_WARPER = """
import pytest
from transformers.generation import logits_process


@pytest.fixture(autouse=True)
def broken_warper(monkeypatch):
    # The fault: the warper hands the scores back unfiltered.
    monkeypatch.setattr(logits_process.{name}, "__call__",
                        lambda self, input_ids, scores: scores)
"""


@pytest.mark.parametrize(("warper", "selection", "expected"), [
    ("TopKLogitsWarper", "top_k", "*outside the top 5*rank*"),
    ("TopPLogitsWarper", "top_p", "*outside the *-token nucleus*"),
])
def test_suite_catches_a_warper_that_does_nothing(
    pytester: pytest.Pytester, copy_suite_module, warper, selection, expected
):
    copy_suite_module("conformance/test_decoding.py")
    pytester.makeconftest(BREAK_WARPER.format(name=warper))
    result = pytester.runpytest("-k", selection, *RUN_ARGS)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*ConformanceError: {expected}"])


def test_suite_passes_with_the_warper_intact(pytester: pytest.Pytester, copy_suite_module):
    copy_suite_module("conformance/test_decoding.py")
    result = pytester.runpytest("-k", "top_k", *RUN_ARGS)
    result.assert_outcomes(passed=1)

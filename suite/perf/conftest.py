"""Fixtures shared by the perf modules: the request to time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infersuite.conformance.inputs import build_prompt_ids, load_prompts
from infersuite.measure.request import RequestInput, build_request_input
from infersuite.plugin.cases import InferCase

PROMPT_INDEX = 3  # the longest shipped sentence: ~20 tokens


def build_case_request(case: InferCase, batch: int = 1) -> RequestInput:
    """`batch` copies of one shipped prompt, as text when the tokenizer fits the model."""
    index = PROMPT_INDEX % len(load_prompts())
    text = load_prompts()[index]
    ids = build_prompt_ids(case.tokenizer, case.model.config.vocab_size)[index]
    return build_request_input(case.tokenizer, [text] * batch, [ids] * batch,
                               case.model.config.vocab_size)


@pytest.fixture
def perf_request(infer_case: InferCase) -> RequestInput:
    """The single-request input for `infer_case`."""
    return build_case_request(infer_case)


@pytest.fixture
def case_request() -> Callable[[InferCase, int], RequestInput]:
    """Factory: `case_request(case, batch)` -> a batch of the shipped prompt."""
    return build_case_request

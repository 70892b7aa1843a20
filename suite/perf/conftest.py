"""Fixtures shared by the perf modules: the request to time and the one-model-per-device case."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infersuite.conformance.inputs import build_prompt_ids, load_prompts
from infersuite.measure.request import RequestInput, build_request_input
from infersuite.options import Case
from infersuite.plugin import InferCase, case_param, get_settings, load_case_model

PROMPT_INDEX = 3  # the longest shipped sentence: ~20 tokens


def primary_cases(config: pytest.Config) -> list[Case]:
    """The first model at the first dtype, once per device: for sweeps too costly per model."""
    seen: dict[str, Case] = {}
    for case in get_settings(config).cases():
        seen.setdefault(case.device, case)
    return list(seen.values())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "primary_case" not in metafunc.fixturenames:
        return
    cuda_available = get_settings(metafunc.config).cuda_available
    params = [case_param(case, cuda_available) for case in primary_cases(metafunc.config)]
    metafunc.parametrize("primary_case", params, indirect=True)


@pytest.fixture
def primary_case(request: pytest.FixtureRequest) -> InferCase:
    case: Case = request.param
    return InferCase(case, get_settings(request.config), load_case_model(request.config, case))


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

"""Batch invariance: a "needle" request answered alone and again among concurrent
requests for other prompts gives the same tokens and log-probabilities. A server that
lets batch companions change an answer (padding, batch-dependent kernels, answers routed
to the wrong request) fails here."""

from __future__ import annotations

import pytest

from infersuite.conformance.compare import ConformanceError
from infersuite.conformance.endpoint import check_same_answer

pytestmark = [pytest.mark.endpoint, pytest.mark.conformance,
              pytest.mark.infer_cases(serving=True)]


def _companions(ep, count):
    prompts = ep.prompts
    return [f"{prompts[i % len(prompts)]} ({i})" for i in range(count)]


@pytest.mark.parametrize("companions", [
    pytest.param(32, id="32-companions"),
    pytest.param(64, id="64-companions", marks=pytest.mark.slow),
])
def test_needle_among_concurrent_requests(infer_endpoint, companions):
    ep = infer_endpoint
    needles = ep.prompts[2], ep.prompts[4]
    solo = {needle: ep.complete(needle, logprobs=3) for needle in needles}
    others = _companions(ep, companions)
    # The needles sit in the middle of the burst, so they run alongside the others.
    bodies = [ep.body(p, logprobs=3) for p in others[: companions // 2]]
    bodies += [ep.body(n, logprobs=3) for n in needles]
    bodies += [ep.body(p, logprobs=3) for p in others[companions // 2:]]
    answers = ep.run_concurrently(bodies)
    crowd = {needle: answers[companions // 2 + i] for i, needle in enumerate(needles)}
    # Negative control: the comparison itself tells two different prompts apart, so a
    # pass above is not the comparison being blind.
    try:
        check_same_answer(answers[0], solo[needles[0]], ep.tolerance, "control", {})
    except ConformanceError:
        pass
    else:
        raise AssertionError(f"control: the answer to {others[0]!r} compared equal to the "
                             f"needle's {solo[needles[0]].text!r}; the check cannot fail")
    for needle in needles:
        check_same_answer(crowd[needle], solo[needle], ep.tolerance,
                          f"needle {needle!r} among {companions} concurrent requests vs alone",
                          ep.context, labels=("in the crowd", "alone"))

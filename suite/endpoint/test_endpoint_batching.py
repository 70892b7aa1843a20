"""Batch invariance: a "needle" request answered alone and again among concurrent
requests for other prompts gives the same tokens and log-probabilities. A server that
lets batch companions change an answer (padding, batch-dependent kernels, answers routed
to the wrong request) fails here."""

from __future__ import annotations

import pytest

from infersuite.conformance.compare import ConformanceError, render_context
from infersuite.conformance.endpoint import check_same_answer

pytestmark = [pytest.mark.endpoint, pytest.mark.conformance,
              pytest.mark.infer_cases(serving=True)]


def _companions(ep, count):
    prompts = ep.prompts
    return [f"{prompts[i % len(prompts)]} ({i})" for i in range(count)]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("companions", [
    pytest.param(32, id="32-companions"),
    pytest.param(64, id="64-companions", marks=pytest.mark.slow),
])
def test_needle_among_concurrent_requests(infer_endpoint, companions, stream):
    ep = infer_endpoint
    needles = ep.prompts[2], ep.prompts[4]
    solo = {needle: ep.complete(needle, logprobs=3, stream=stream) for needle in needles}
    others = _companions(ep, companions)
    other_alone = ep.complete(others[0], logprobs=3, stream=stream)
    # The needles sit in the middle of the burst, so they run alongside the others.
    bodies = [ep.body(p, logprobs=3, stream=stream) for p in others[: companions // 2]]
    bodies += [ep.body(n, logprobs=3, stream=stream) for n in needles]
    bodies += [ep.body(p, logprobs=3, stream=stream) for p in others[companions // 2:]]
    answers = ep.run_concurrently(bodies, keep_errors=True)
    broken = [(i, a) for i, a in enumerate(answers) if isinstance(a, BaseException)]
    if broken:
        index, error = broken[0]
        raise ConformanceError(
            f"{len(broken)} of {len(bodies)} concurrent requests (stream={stream}) failed; "
            f"request {index}: {type(error).__name__}: {str(error)[:300]} "
            f"[{render_context(ep.context)}]")
    crowd = {needle: answers[companions // 2 + i] for i, needle in enumerate(needles)}
    # Negative control, on answers given alone: the comparison tells two different prompts
    # apart, so a pass below is not the comparison being blind.
    try:
        check_same_answer(other_alone, solo[needles[0]], ep.tolerance, "control", {})
    except ConformanceError:
        pass
    else:
        raise AssertionError(f"control: the answer to {others[0]!r} compared equal to the "
                             f"needle's {solo[needles[0]].text!r}; the check cannot fail")
    for needle in needles:
        check_same_answer(crowd[needle], solo[needle], ep.tolerance,
                          f"needle {needle!r} among {companions} concurrent requests vs alone "
                          f"(stream={stream})", ep.context,
                          labels=("in the crowd", "alone"))

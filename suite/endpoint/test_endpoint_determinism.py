"""A server repeats itself: temperature 0 gives the same answer every time, and sampling
with the same ``seed`` gives the same tokens (while different seeds do not all agree)."""

from __future__ import annotations

import pytest

from infersuite.conformance.compare import ConformanceError, render_context
from infersuite.conformance.endpoint import check_same_answer

pytestmark = [pytest.mark.endpoint, pytest.mark.conformance,
              pytest.mark.infer_cases(serving=True)]
REPEATS = 3
SEEDS = (11, 12, 13, 14)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_temperature_zero_repeats(infer_endpoint, api):
    """The same request three times at temperature 0: identical text, tokens and
    log-probabilities (within the server precision's tolerance)."""
    ep = infer_endpoint
    for index, prompt in enumerate(ep.prompts[:3]):
        if api == "chat":
            body = ep.client.request_body(messages=[{"role": "user", "content": prompt}],
                                          max_tokens=8, temperature=0.0, logprobs=True,
                                          top_logprobs=3)
        else:
            body = ep.body(prompt, logprobs=3)
        first = ep.client.create(body)[0]
        for repeat in range(1, REPEATS):
            again = ep.client.create(body)[0]
            check_same_answer(again, first, ep.tolerance,
                              f"{api} request {index} ({prompt!r}), repeat {repeat}",
                              ep.context, labels=(f"repeat {repeat}", "first answer"))


def test_seed_reproduces_sampling(infer_endpoint):
    """Temperature 1 with a seed, twice: the same tokens; four seeds: not all the same
    (a server that ignores the seed but is deterministic fails here)."""
    ep = infer_endpoint
    prompt = ep.prompts[1]
    texts = {}
    for seed in SEEDS:
        body = ep.body(prompt, temperature=1.0, top_p=1.0, seed=seed, max_tokens=16)
        first, second = ep.client.create(body)[0], ep.client.create(body)[0]
        if first.text != second.text:
            raise ConformanceError(f"seed={seed}: two sampled answers to the same request "
                                   f"differ: {first.text!r} vs {second.text!r} "
                                   f"[{render_context(ep.context)}]")
        texts[seed] = first.text
    if len(set(texts.values())) == 1:
        raise ConformanceError(f"seeds {list(SEEDS)} all give {texts[SEEDS[0]]!r}: the seed "
                               f"does not reach the sampler (16 tokens at temperature 1) "
                               f"[{render_context(ep.context)}]")

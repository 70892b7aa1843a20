"""Prefix caching: a prompt answered cold, again right after (its prefix cached), and
after another prompt that shares its beginning gives the same answer each time, and each
answer is its own prompt's (prompt token count, and the first token's log-probability
against the reference). A cache that hands one request another's state fails here."""

from __future__ import annotations

import pytest

from infersuite.conformance.endpoint import check_same_answer

pytestmark = [pytest.mark.endpoint, pytest.mark.conformance,
              pytest.mark.infer_cases(serving=True)]


def test_prefix_cache_keeps_answers(infer_endpoint):
    ep = infer_endpoint
    prompt = ep.prompts[3]
    cut = len(prompt) * 2 // 3
    sibling = prompt[:cut] + " while the scheduler waits"
    ep.complete(ep.prompts[5], max_tokens=2)  # something unrelated in the cache first
    cold = ep.complete(prompt, logprobs=3)
    warm = ep.complete(prompt, logprobs=3)
    sibling_answer = ep.complete(sibling, logprobs=3)
    after = ep.complete(prompt, logprobs=3)
    check_same_answer(warm, cold, ep.tolerance, f"{prompt!r} repeated (warm) vs cold",
                      ep.context, labels=("warm", "cold"))
    check_same_answer(after, cold, ep.tolerance,
                      f"{prompt!r} after {sibling!r} (shared prefix of {cut} characters) vs "
                      "cold", ep.context, labels=("after the sibling", "cold"))
    for text, answer, when in ((prompt, cold, "cold"), (prompt, after, "after the sibling"),
                               (sibling, sibling_answer, "after its prefix was cached")):
        ep.check_answers_prompt(answer, text, f"{text!r} {when}")
    alone = ep.complete(sibling, logprobs=3)
    check_same_answer(sibling_answer, alone, ep.tolerance,
                      f"{sibling!r} right after its prefix was cached vs again", ep.context,
                      labels=("first", "again"))

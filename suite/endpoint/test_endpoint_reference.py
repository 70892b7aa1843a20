"""The server against the reference: its temperature-0 answers and their log-probabilities
against transformers float32 on the same weights, by the engines' agreement rule (bound
of the server's precision; quantized weights by top-1 agreement)."""

from __future__ import annotations

import pytest

from infersuite.conformance.agreement import QUANTIZED_GATES
from infersuite.conformance.compare import ConformanceError, render_context
from infersuite.conformance.endpoint import check_against_reference, check_quantized_top1

pytestmark = [pytest.mark.endpoint, pytest.mark.conformance,
              pytest.mark.infer_cases(serving=True)]


def test_prompt_tokenization_matches_reference(infer_endpoint):
    """The server tokenizes prompts as the model's tokenizer does (where it has a
    tokenize route): a different split means a different input, whatever follows."""
    ep = infer_endpoint
    ep.require_reference()
    for index, prompt in enumerate(ep.prompts):
        served = ep.client.tokenize(prompt)
        if served is None:
            pytest.skip(f"{ep.case.case.engine}: the server has no tokenize route")
        want = ep.engine.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        if served != want:
            raise ConformanceError(f"prompt {index} ({prompt!r}): the server's token ids "
                                   f"{served} differ from the tokenizer's {want} "
                                   f"[{render_context(ep.context)}]")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_greedy_answers_agree_with_reference(infer_endpoint, stream, record_property):
    ep = infer_endpoint
    texts = ep.texts
    precision = ep.engine.precision
    compared, worst, firsts = 0, 0.0, []
    for index, prompt in enumerate(ep.prompts):
        reference = ep.reference_answer(prompt)
        answer = ep.complete(prompt, logprobs=5, stream=stream)
        verdict = check_against_reference(
            answer, reference, texts, ep.tolerance, precision,
            f"request {index} ({prompt!r}, temperature 0, stream={stream})", ep.context)
        compared += verdict.logprobs_compared
        worst = max(worst, verdict.max_logprob_diff)
        if answer.tokens:
            firsts.append((answer.tokens[0], reference.tokens[0]))
    summary = (f"{len(ep.prompts)} prompts, {compared} logprobs compared, max |Δ logprob| "
               f"{worst:.3e} ({precision} bound)")
    record_property("reference_agreement", summary)
    print(f"[{ep.case.id}] stream={stream}: {summary}")
    if precision in QUANTIZED_GATES:
        check_quantized_top1(firsts, texts, precision, "first tokens vs reference argmax",
                             ep.context)
    elif compared == 0:
        raise ConformanceError(f"no log-probability could be compared with the reference "
                               f"[{render_context(ep.context)}]")

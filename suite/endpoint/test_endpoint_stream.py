"""A stream is the answer in pieces: the same tokens and finish reason as the whole
answer, chunks that join to its text with nothing lost or repeated, and usage counts that
equal the tokens received."""

from __future__ import annotations

import pytest

from infersuite.conformance.compare import ConformanceError, render_context
from infersuite.conformance.endpoint import check_reassembly, check_same_answer, check_usage

pytestmark = [pytest.mark.endpoint, pytest.mark.conformance,
              pytest.mark.infer_cases(serving=True)]


def _pair(ep, api, prompt, **params):
    if api == "chat":
        base = ep.client.request_body(messages=[{"role": "user", "content": prompt}],
                                      temperature=0.0, max_tokens=12, logprobs=True,
                                      top_logprobs=2, **params)
    else:
        base = ep.body(prompt, logprobs=2, **params)
    whole = ep.client.create(base)[0]
    streamed = ep.client.create({**base, "stream": True,
                                 "stream_options": {"include_usage": True}})[0]
    return whole, streamed


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_stream_equals_whole_answer(infer_endpoint, api):
    ep = infer_endpoint
    for index, prompt in enumerate(ep.prompts):
        whole, streamed = _pair(ep, api, prompt)
        what = f"{api} request {index} ({prompt!r}): stream vs whole answer"
        check_same_answer(streamed, whole, ep.tolerance, what, ep.context,
                          labels=("stream", "whole"))
        check_reassembly(streamed, whole, what, ep.context)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_usage_counts_tokens_received(infer_endpoint, api):
    """usage.completion_tokens equals the tokens received, whole and streamed (a stream
    without usage, even with stream_options.include_usage, is held to the whole answer's
    count)."""
    ep = infer_endpoint
    for index, prompt in enumerate(ep.prompts[:4]):
        whole, streamed = _pair(ep, api, prompt)
        for name, answer in (("whole answer", whole), ("stream", streamed)):
            if answer.logprobs is None:
                raise ConformanceError(f"{api} request {index}, {name}: logprobs were asked "
                                       f"for, none came back [{render_context(ep.context)}]")
        check_usage(whole, len(whole.logprobs or []), f"{api} request {index}, whole answer",
                    ep.context)
        # Servers that send no usage in a stream are held to the whole answer's count.
        check_usage(streamed, len(streamed.logprobs or []),
                    f"{api} request {index}, streamed", ep.context, usage=whole.usage)

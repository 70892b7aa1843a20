"""The API's rules, as a client relies on them: ``max_tokens`` gives exactly that many
tokens, a ``stop`` string ends the answer before it (also when it spans two tokens, and
in a stream), EOS ends an answer with ``finish_reason="stop"``, and a prompt longer than
the context is a 4xx error, never silently truncated."""

from __future__ import annotations

import pytest

from infersuite.conformance.compare import ConformanceError, render_context

pytestmark = [pytest.mark.endpoint, pytest.mark.conformance,
              pytest.mark.infer_cases(serving=True)]
LONG = 16
SAMPLED = 200


def _long_answer(ep):
    """A 16-token temperature-0 answer that ran to its length (no EOS on the way)."""
    for prompt in ep.prompts:
        answer = ep.complete(prompt, max_tokens=LONG, logprobs=1)
        if answer.finish_reason == "length":
            if answer.logprobs is None:
                raise ConformanceError(f"{prompt!r}: logprobs were asked for, none came back "
                                       f"[{render_context(ep.context)}]")
            return prompt, answer
    raise ConformanceError(f"no shipped prompt gives a {LONG}-token answer with "
                           f"finish_reason 'length' [{render_context(ep.context)}]")


def _fail(ep, text):
    raise ConformanceError(f"{text} [{render_context(ep.context)}]")


def test_max_tokens_exact(infer_endpoint):
    ep = infer_endpoint
    prompt, full = _long_answer(ep)
    if len(full.logprobs) != LONG:
        _fail(ep, f"max_tokens={LONG} on {prompt!r}: {len(full.logprobs)} tokens came back "
                  f"{full.tokens}")
    for limit in (1, 4, 9):
        for stream in (False, True):
            answer = ep.complete(prompt, max_tokens=limit, logprobs=1, stream=stream)
            got = len(answer.logprobs or [])
            if got != limit or answer.tokens != full.tokens[:limit] \
                    or not full.text.startswith(answer.text) or answer.finish_reason != "length":
                _fail(ep, f"max_tokens={limit} (stream={stream}) on {prompt!r}: {got} tokens "
                          f"{answer.tokens}, text {answer.text!r}, finish_reason "
                          f"{answer.finish_reason!r}; expected the first {limit} tokens "
                          f"{full.tokens[:limit]} of the {LONG}-token answer "
                          f"{full.text!r}, and 'length'")


def test_max_tokens_one_when_sampling(infer_endpoint):
    """max_tokens=1 on 200 seeded samples (temperature 0.5): exactly one token each,
    whatever was drawn (a token that is only part of a character included)."""
    ep = infer_endpoint
    bodies = [ep.body(ep.prompts[1], max_tokens=1, temperature=0.5, top_p=1.0, seed=seed,
                      logprobs=1) for seed in range(SAMPLED)]
    answers = ep.run_concurrently(bodies, max_connections=8)
    wrong = [(seed, a.text, len(a.logprobs or []), (a.usage or {}).get("completion_tokens"))
             for seed, a in enumerate(answers)
             if len(a.logprobs or []) != 1 or (a.usage or {}).get("completion_tokens", 1) != 1]
    if wrong:
        _fail(ep, f"max_tokens=1, temperature 0.5: {len(wrong)} of {SAMPLED} seeded answers have "
                  f"more than one token; (seed, text, tokens, usage.completion_tokens): "
                  f"{wrong[:5]}")


def _boundary_stop(full):
    """A stop string made of the last character of one token and the first of the next,
    so it crosses a token (and stream chunk) boundary."""
    tokens = full.tokens
    for i in range(1, len(tokens) - 1):
        if tokens[i] and tokens[i + 1]:
            stop = tokens[i][-1] + tokens[i + 1][0]
            at = full.text.find(stop)
            if at > 0:
                return stop, at
    return None, None


def test_stop_string_excluded_and_honoured_across_chunks(infer_endpoint):
    ep = infer_endpoint
    prompt, full = _long_answer(ep)
    stop, at = _boundary_stop(full)
    if stop is None:
        pytest.skip(f"the {LONG}-token answer {full.text!r} has no two adjacent non-empty "
                    "tokens to build a stop string from")
    for stream in (False, True):
        answer = ep.complete(prompt, max_tokens=LONG, stop=[stop], stream=stream)
        if answer.text != full.text[:at] or answer.finish_reason != "stop":
            _fail(ep, f"stop={stop!r} (spanning two tokens, stream={stream}) on {prompt!r}: "
                      f"got {answer.text!r} with finish_reason {answer.finish_reason!r}; "
                      f"expected {full.text[:at]!r} (the answer {full.text!r} up to the "
                      f"stop string, excluded) with 'stop'")


def test_eos_finishes_with_stop(infer_endpoint):
    """logit_bias makes EOS the only choice: the answer ends at once, finish_reason
    'stop', EOS not shown as text."""
    ep = infer_endpoint
    ep.require_reference()  # the served model's EOS id is the model's to say
    eos = ep.engine.eos_ids[0]
    for stream in (False, True):
        answer = ep.complete(ep.prompts[1], max_tokens=8, logit_bias={str(eos): 100},
                             stream=stream)
        count = (answer.usage or {}).get("completion_tokens")
        if answer.finish_reason != "stop" or answer.text != "" or (count or 0) > 1:
            _fail(ep, f"EOS (id {eos}) forced by logit_bias, stream={stream}: text "
                      f"{answer.text!r}, finish_reason {answer.finish_reason!r}, "
                      f"usage.completion_tokens {count}; expected '', 'stop', at most 1")


def _prompt_of_length(ep, n_tokens):
    """A text of `n_tokens` tokens as the server counts them: tokens per unit from two
    lengths (a BOS the server adds cancels out); without a tokenize route, at least one
    token per unit."""
    import math

    unit = " cache"
    short, long = ep.client.tokenize(unit * 16), ep.client.tokenize(unit * 32)
    if not short or not long:
        return unit * (n_tokens + 1)
    per = (len(long) - len(short)) / 16
    base = len(short) - 16 * per
    return unit * max(1, math.ceil((n_tokens - base) / per))


def test_context_overflow_is_a_client_error(infer_endpoint):
    ep = infer_endpoint
    n_ctx = ep.engine.n_ctx
    if n_ctx is None:
        pytest.skip(f"{ep.case.case.engine}: the server's context length is not known "
                    "(engine argument n_ctx=N)")
    prompt = _prompt_of_length(ep, n_ctx + 32)
    response = ep.client.post("/v1/completions", json=ep.body(prompt, max_tokens=4))
    if not 400 <= response.status_code < 500:
        _fail(ep, f"a prompt of more than {n_ctx + 32} tokens (context {n_ctx}): HTTP "
                  f"{response.status_code} {response.text[:300]!r}; expected a 4xx error")
    # Fits, but not with the answer: an error, or an answer cut at the context's end,
    # never a prompt shortened behind the client's back.
    ids = ep.client.tokenize(_prompt_of_length(ep, n_ctx - 8))
    prompt = _prompt_of_length(ep, n_ctx - 8)
    response = ep.client.post("/v1/completions", json=ep.body(prompt, max_tokens=64))
    if response.status_code == 200:
        usage = response.json().get("usage") or {}
        if ids is not None and usage.get("prompt_tokens") not in (None, len(ids)):
            _fail(ep, f"a {len(ids)}-token prompt with max_tokens=64 (context {n_ctx}) came "
                      f"back with usage.prompt_tokens {usage.get('prompt_tokens')}: the "
                      "prompt was truncated")
        if usage.get("completion_tokens", 0) + usage.get("prompt_tokens", 0) > n_ctx:
            _fail(ep, f"prompt + answer {usage} exceed the context {n_ctx}")
    elif not 400 <= response.status_code < 500:
        size = f"a {len(ids)}-token prompt" if ids is not None else "a prompt near the end"
        _fail(ep, f"{size} with max_tokens=64 (context {n_ctx}): HTTP "
                  f"{response.status_code} {response.text[:300]!r}")


@pytest.mark.parametrize("temperature", [0.0, 1.0], ids=["greedy", "sampled"])
def test_n_choices(infer_endpoint, temperature):
    """n=3: three choices, indexed 0..2; at temperature 0 each is the single answer."""
    from infersuite.serving.client import EndpointError

    ep = infer_endpoint
    prompt = ep.prompts[2]
    params = {"temperature": temperature} if temperature == 0 else {
        "temperature": temperature, "top_p": 1.0, "seed": 5}
    try:
        choices = ep.client.create(ep.body(prompt, n=3, **params))
    except EndpointError as exc:
        _fail(ep, f"n=3 at temperature {temperature} refused: {exc}")
    texts = [c.text for c in choices]
    if len(choices) != 3:
        _fail(ep, f"n=3 at temperature {temperature} on {prompt!r}: {len(choices)} choice(s) "
                  f"{texts}")
    if temperature == 0:
        single = ep.complete(prompt)
        if texts != [single.text] * 3:
            _fail(ep, f"n=3 at temperature 0 on {prompt!r}: choices {texts}; each should be "
                      f"the single answer {single.text!r}")


def test_token_id_prompt_equals_text_prompt(infer_endpoint):
    """The completions API takes a prompt as token ids: the server's ids for a text prompt,
    sent as ids, give the same answer as the text."""
    ep = infer_endpoint
    prompt = ep.prompts[3]
    ids = ep.prompt_ids(prompt)
    as_text = ep.complete(prompt, logprobs=1)
    response = ep.client.post("/v1/completions", json=ep.body(ids, logprobs=1))
    if response.status_code != 200:
        _fail(ep, f"a prompt of {len(ids)} token ids: HTTP {response.status_code} "
                  f"{response.text[:300]!r}")
    from infersuite.serving.client import parse_answer

    as_ids = parse_answer(response.json(), "token-id prompt")[0]
    if as_ids.text != as_text.text:
        _fail(ep, f"the prompt {prompt!r} as {len(ids)} token ids answers {as_ids.text!r}, as "
                  f"text {as_text.text!r}")

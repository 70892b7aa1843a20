"""Bad requests get a 4xx answer with an error body, and the server answers the next good
request: malformed JSON, an unknown model, a negative max_tokens, a 1 MB prompt, a body
that is not UTF-8."""

from __future__ import annotations

import json

import httpx
import pytest

from infersuite.conformance.compare import ConformanceError, render_context

pytestmark = [pytest.mark.endpoint, pytest.mark.conformance,
              pytest.mark.infer_cases(serving=True)]


def _bad_requests(model):
    good = {"model": model, "prompt": "Hi", "max_tokens": 2}
    return {
        "malformed-json": b'{"model": "' + model.encode() + b'", "prompt": ',
        "unknown-model": json.dumps({**good, "model": "no-such-model-infersuite"}).encode(),
        "negative-max-tokens": json.dumps({**good, "max_tokens": -1}).encode(),
        "1mb-prompt": json.dumps({**good, "prompt": "cache " * 175_000}).encode(),
        "invalid-utf8": b'{"model": "' + model.encode() + b'", "prompt": "\xff\xfe\xfa", '
                        b'"max_tokens": 2}',
    }


@pytest.mark.parametrize("kind", ["malformed-json", "unknown-model", "negative-max-tokens",
                                  "1mb-prompt", "invalid-utf8"])
def test_bad_request_is_a_client_error(infer_endpoint, kind):
    ep = infer_endpoint
    body = _bad_requests(ep.client.model)[kind]
    # A fresh connection for each request: the check is about the server, not about a
    # connection the bad request may have spoiled.
    with httpx.Client(base_url=ep.client.base_url, timeout=ep.client.timeout,
                      headers=ep.client.auth_headers()) as http:
        response = http.post("/v1/completions", content=body,
                             headers={"content-type": "application/json"})
    try:
        error_body = response.json()
    except ValueError:
        error_body = None
    problems = []
    if not 400 <= response.status_code < 500:
        problems.append(f"HTTP {response.status_code} (expected 4xx)")
    if not isinstance(error_body, dict):
        problems.append("the body is not a JSON object")
    after = ep.client.complete("Hi", max_tokens=2, temperature=0.0)
    if problems:
        raise ConformanceError(f"{kind} ({len(body)} bytes): " + "; ".join(problems)
                               + f"; body {response.text[:200]!r}. The server answered the "
                               f"next good request ({after.text!r}) [{render_context(ep.context)}]")

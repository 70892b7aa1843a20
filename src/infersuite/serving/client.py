"""A client of the OpenAI-compatible HTTP API, as the endpoint checks need it.

One shape for every answer: ``Completion`` holds the text, the finish reason, the usage
counts, the per-token log-probabilities (completions and chat formats normalized to one),
and for a streamed answer each chunk's text, so the checks can compare a stream with the
whole answer. Every call has a timeout; the API key comes from an environment variable and
is never written anywhere (not in reprs, reports or errors).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

DEFAULT_TIMEOUT_S = 60.0


class EndpointError(RuntimeError):
    """A request the server answered with an error, or an answer the API does not allow;
    the message names the request and quotes the server."""


@dataclass
class TokenLogprob:
    """One generated token: its text, its log-probability, the top alternatives."""

    token: str
    logprob: float | None
    top: dict[str, float] = field(default_factory=dict)


@dataclass
class Completion:
    """One choice of an answer, streamed or not."""

    text: str
    finish_reason: str | None
    usage: dict[str, int] | None
    logprobs: list[TokenLogprob] | None
    chunks: list[str] | None = None  # streamed: the text each content chunk carried
    raw: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def tokens(self) -> list[str] | None:
        return None if self.logprobs is None else [t.token for t in self.logprobs]


def _check(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise EndpointError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    try:
        return response.json()
    except ValueError:
        raise EndpointError(f"{what}: the answer is not JSON: {response.text[:200]!r}") from None


def _logprobs(choice: Mapping[str, Any]) -> list[TokenLogprob] | None:
    """Completions format (tokens/token_logprobs/top_logprobs lists) or chat format
    (content: [{token, logprob, top_logprobs: [{token, logprob}]}])."""
    data = choice.get("logprobs")
    if not data:
        return None
    if "content" in data:
        return [TokenLogprob(item["token"], item.get("logprob"),
                             {alt["token"]: alt["logprob"] for alt in item.get("top_logprobs")
                              or []})
                for item in data["content"] or []]
    tops = data.get("top_logprobs") or [None] * len(data.get("tokens") or [])
    return [TokenLogprob(token, logprob, dict(top or {}))
            for token, logprob, top in zip(data.get("tokens") or [],
                                           data.get("token_logprobs") or [], tops,
                                           strict=False)]


def _choice_text(choice: Mapping[str, Any]) -> str:
    if "text" in choice:
        return choice.get("text") or ""
    message = choice.get("message") or choice.get("delta") or {}
    return message.get("content") or ""


def parse_answer(body: Mapping[str, Any], what: str) -> list[Completion]:
    """The choices of a non-streamed answer, ordered by index."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise EndpointError(f"{what}: no choices in the answer: {json.dumps(body)[:300]}")
    ordered = sorted(choices, key=lambda c: c.get("index", 0))
    return [Completion(_choice_text(c), c.get("finish_reason"), body.get("usage"),
                       _logprobs(c), raw=[dict(body)]) for c in ordered]


def assemble_stream(events: list[dict[str, Any]], what: str) -> list[Completion]:
    """The choices of a streamed answer: chunk texts concatenated per choice index, the
    last finish reason, log-probabilities in order, usage from the chunk that has it."""
    by_index: dict[int, Completion] = {}
    usage = None
    for event in events:
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            index = choice.get("index", 0)
            item = by_index.setdefault(index, Completion("", None, None, None, chunks=[]))
            text = _choice_text(choice)
            if text:
                item.text += text
                assert item.chunks is not None
                item.chunks.append(text)
            item.finish_reason = choice.get("finish_reason") or item.finish_reason
            pieces = _logprobs(choice)
            if pieces is not None:
                item.logprobs = (item.logprobs or []) + pieces
            item.raw.append(event)
    if not by_index:
        raise EndpointError(f"{what}: the stream carried no choices ({len(events)} events)")
    for item in by_index.values():
        item.usage = usage
    return [by_index[i] for i in sorted(by_index)]


def _sse_data(lines: Iterator[str] | list[str]) -> Iterator[str]:
    for line in lines:
        if line.startswith("data:"):
            yield line[5:].strip()


def _decode_events(payloads: list[str], what: str) -> list[dict[str, Any]]:
    """The JSON events of a stream up to ``[DONE]``; an error event, a stream that ends
    without ``[DONE]`` or an event that is not a JSON object is an EndpointError."""
    events: list[dict[str, Any]] = []
    for payload in payloads:
        if payload == "[DONE]":
            return events
        try:
            event = json.loads(payload)
        except ValueError:
            raise EndpointError(f"{what}: a stream event is not JSON: {payload[:200]!r}") \
                from None
        if not isinstance(event, dict):
            raise EndpointError(f"{what}: a stream event is not an object: {payload[:200]!r}")
        if event.get("error"):
            raise EndpointError(f"{what}: error event in the stream: {payload[:300]}")
        events.append(event)
    raise EndpointError(f"{what}: the stream ended without [DONE] after {len(events)} events")


class OpenAIClient:
    """Synchronous and asynchronous calls to one server (``base_url`` without ``/v1``)."""

    def __init__(self, base_url: str, *, model: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", timeout_s: float = DEFAULT_TIMEOUT_S,
                 ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.api_key_env = api_key_env
        self.timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout,
                                  headers=self.auth_headers())
        self.model = model or self._first_model()
        # A planted slowdown (a server engine's slowdown=F): load runs read this client's
        # streams on a clock F faster (serving/load.py), to prove a gate on a server.
        self.slowdown = 0.0

    def __repr__(self) -> str:  # the key stays out of every repr
        return f"OpenAIClient({self.base_url!r}, model={self.model!r})"

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header, when the key's variable is set (empty otherwise)."""
        key = os.environ.get(self.api_key_env, "")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def close(self) -> None:
        self._http.close()

    def _first_model(self) -> str:
        body = _check(self._http.get("/v1/models"), f"GET {self.base_url}/v1/models")
        models = [m.get("id") for m in body.get("data") or []]
        if not models:
            raise EndpointError(f"{self.base_url}/v1/models lists no model; pass the served "
                                "model's name (engine argument model=NAME)")
        return str(models[0])

    def request_body(self, prompt: str | list[int] | None = None,
                     messages: list[dict[str, str]] | None = None,
                     **params: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, **params}
        if messages is not None:
            body["messages"] = messages
        else:
            body["prompt"] = prompt
        return body

    @staticmethod
    def path_of(body: Mapping[str, Any]) -> str:
        return "/v1/chat/completions" if "messages" in body else "/v1/completions"

    def get(self, path: str) -> httpx.Response:
        return self._http.get(path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """A raw request (for malformed input): the response, whatever its status."""
        return self._http.post(path, **kwargs)

    def create(self, body: Mapping[str, Any]) -> list[Completion]:
        """Send one completions or chat request; a stream is read to its end."""
        path = self.path_of(body)
        what = f"POST {path} {_summary(body)}"
        if not body.get("stream"):
            return parse_answer(_check(self._http.post(path, json=dict(body)), what), what)
        with self._http.stream("POST", path, json=dict(body)) as response:
            if response.status_code >= 400:
                response.read()
                _check(response, what)
            payloads = list(_sse_data(response.iter_lines()))
        return assemble_stream(_decode_events(payloads, what), what)

    def complete(self, prompt: str | list[int], **params: Any) -> Completion:
        return self.create(self.request_body(prompt, **params))[0]

    def chat(self, messages: list[dict[str, str]], **params: Any) -> Completion:
        return self.create(self.request_body(messages=messages, **params))[0]

    def tokenize(self, text: str) -> list[int] | None:
        """The server's token ids for `text`, where it has a tokenize route (vLLM's
        ``/tokenize``, llama-cpp-python's ``/extras/tokenize``); None otherwise."""
        for path, body in (("/tokenize", {"model": self.model, "prompt": text,
                                           "content": text, "add_special_tokens": True}),
                           ("/extras/tokenize", {"input": text})):
            response = self._http.post(path, json=body)
            if response.status_code != 200:
                continue
            try:
                tokens = [int(t) for t in response.json().get("tokens", [])]
            except (ValueError, TypeError, AttributeError):
                continue
            if tokens or not text:  # no ids for a non-empty text: not this route's format
                return tokens
        return None

    async def acreate(self, http: httpx.AsyncClient, body: Mapping[str, Any]) -> list[Completion]:
        """`create` on an AsyncClient (see `async_http`), for concurrent requests."""
        path = self.path_of(body)
        what = f"POST {path} {_summary(body)}"
        if not body.get("stream"):
            return parse_answer(_check(await http.post(path, json=dict(body)), what), what)
        async with http.stream("POST", path, json=dict(body)) as response:
            if response.status_code >= 400:
                await response.aread()
                _check(response, what)
            payloads = [p async for p in _asse_data(response.aiter_lines())]
        return assemble_stream(_decode_events(payloads, what), what)

    def async_http(self, max_connections: int = 64) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections)
        return httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout,
                                 headers=self.auth_headers(), limits=limits)


async def _asse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    async for line in lines:
        if line.startswith("data:"):
            yield line[5:].strip()


def _summary(body: Mapping[str, Any]) -> str:
    """A short description of a request for messages: its parameters and a prompt excerpt."""
    shown = {k: v for k, v in body.items() if k not in ("prompt", "messages", "model")}
    prompt = body.get("prompt", body.get("messages"))
    excerpt = repr(prompt)
    if len(excerpt) > 60:
        excerpt = excerpt[:57] + "..."
    return f"{json.dumps(shown, sort_keys=True)} prompt={excerpt}"

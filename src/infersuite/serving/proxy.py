"""A fault-injecting proxy between the suite and a real server, to prove the endpoint
checks: each fault is a way a serving stack can be wrong, and each must fail the check
written for it (tests/endpoint/test_endpoint_faults.py).

Faults:

- ``drop_chunk`` / ``dup_chunk``: the second stream event that carries text is dropped /
  sent twice;
- ``swap_answers``: two answers completing while other requests are in flight are handed
  to each other's requests (a scheduler routing results to the wrong request);
- ``truncate_max_tokens``: the request's ``max_tokens`` is lowered by one on the way in;
- ``strip_logprobs``: the answers' ``logprobs`` are removed;
- ``stale_prefix``: a prompt whose first 24 characters were seen before gets the earlier
  prompt's answer (a prefix cache returning another request's state);
- ``none``: pass everything through (the negative control).

It listens on 127.0.0.1 on a free port (``infersuite.serving.httpd``) and forwards with
httpx.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from infersuite.serving.httpd import BackgroundServer

FAULTS = ("none", "drop_chunk", "dup_chunk", "swap_answers", "truncate_max_tokens",
          "strip_logprobs", "stale_prefix")
SWAP_WAIT_S = 2.0
PREFIX_CHARS = 24


class FaultProxy(BackgroundServer):
    """``FaultProxy(upstream, fault).start()``; ``url`` is where clients connect."""

    def __init__(self, upstream: str, fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault {fault!r}: expected one of {', '.join(FAULTS)}")
        self.upstream = upstream.rstrip("/")
        self.fault = fault
        self.http = httpx.Client(base_url=self.upstream, timeout=120.0)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.waiting: dict[str, Any] | None = None  # swap_answers: an answer waiting for a twin
        self.seen: dict[str, bytes] = {}  # stale_prefix: first answer per prompt prefix
        self.applied = 0  # how many times the fault changed something
        super().__init__(_handler(self))

    def stop(self) -> None:
        super().stop()
        self.http.close()

    # What each fault does to a request or an answer.
    def rewrite_request(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.fault == "truncate_max_tokens" and int(body.get("max_tokens") or 0) > 1:
            self.applied += 1
            return {**body, "max_tokens": int(body["max_tokens"]) - 1}
        return body

    def rewrite_answer(self, body: dict[str, Any] | None, raw: bytes,
                       request: dict[str, Any] | None) -> bytes:
        if body is None or "choices" not in body:
            return raw
        if self.fault == "strip_logprobs":
            for choice in body["choices"]:
                choice.pop("logprobs", None)
            self.applied += 1
            return json.dumps(body).encode()
        if self.fault == "stale_prefix" and request is not None:
            prompt = json.dumps(request.get("prompt", request.get("messages")))
            key = f"{request.get('stream')}:{prompt[:PREFIX_CHARS]}"
            with self.lock:
                earlier = self.seen.setdefault(key, raw)
            if earlier is not raw and earlier != raw:
                self.applied += 1
            return earlier
        if self.fault == "swap_answers":
            return self._swap(raw)
        return raw

    def _swap(self, raw: bytes) -> bytes:
        with self.lock:
            if self.waiting is not None:
                slot, self.waiting = self.waiting, None
                raw, slot["raw"] = slot["raw"], raw
                slot["event"].set()
                self.applied += 1
                return raw
            if self.in_flight <= 1:
                return raw
            slot = {"raw": raw, "event": threading.Event()}
            self.waiting = slot
        if not slot["event"].wait(SWAP_WAIT_S):
            with self.lock:
                if self.waiting is slot:
                    self.waiting = None
        return bytes(slot["raw"])

    def rewrite_stream(self, events: list[bytes]) -> list[bytes]:
        """`events`: the raw ``data: ...`` lines of one streamed answer."""
        if self.fault not in ("drop_chunk", "dup_chunk"):
            return events
        with_text = [i for i, e in enumerate(events) if _carries_text(e)]
        if len(with_text) < 2:
            return events
        i = with_text[1]
        self.applied += 1
        if self.fault == "drop_chunk":
            return events[:i] + events[i + 1:]
        return [*events[:i + 1], events[i], *events[i + 1:]]


def _carries_text(event: bytes) -> bool:
    payload = event.decode(errors="replace").removeprefix("data:").strip()
    if not payload or payload == "[DONE]":
        return False
    try:
        data = json.loads(payload)
    except ValueError:
        return False
    for choice in data.get("choices") or []:
        if choice.get("text") or (choice.get("delta") or {}).get("content"):
            return True
    return False


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, content: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def do_GET(self) -> None:
            answer = proxy.http.get(self.path)
            self._reply(answer.status_code, answer.content,
                        answer.headers.get("content-type", "application/json"))

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                request = json.loads(raw)
            except ValueError:
                request = None
            if isinstance(request, dict):
                request = proxy.rewrite_request(request)
                raw = json.dumps(request).encode()
            else:
                request = None
            headers = {"content-type": self.headers.get("content-type", "application/json")}
            if self.headers.get("authorization"):
                headers["authorization"] = self.headers["authorization"]
            with proxy.lock:
                proxy.in_flight += 1
            try:
                if request is not None and request.get("stream"):
                    self._stream(raw, headers)
                    return
                answer = proxy.http.post(self.path, content=raw, headers=headers)
                try:
                    body = answer.json()
                except ValueError:
                    body = None
                content = answer.content
                if answer.status_code == 200:
                    content = proxy.rewrite_answer(body, content, request)
                self._reply(answer.status_code, content,
                            answer.headers.get("content-type", "application/json"))
            finally:
                with proxy.lock:
                    proxy.in_flight -= 1

        def _stream(self, raw: bytes, headers: dict[str, str]) -> None:
            with proxy.http.stream("POST", self.path, content=raw, headers=headers) as answer:
                lines = [line.encode() for line in answer.iter_lines()]
                status = answer.status_code
                content_type = answer.headers.get("content-type", "text/event-stream")
            if status != 200:
                self._reply(status, b"\n".join(lines), content_type)
                return
            events = [line for line in lines if line.startswith(b"data:")]
            body = b"".join(e + b"\n\n" for e in proxy.rewrite_stream(events))
            self._reply(200, body, "text/event-stream")

    return Handler

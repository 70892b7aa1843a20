"""A stub OpenAI-compatible server with known timing, to test the load harness itself.

Every prompt gets the same answer (tokens "t0", "t1", ...). It streams completions whose
time to first token and gaps between chunks are drawn from uniform distributions the test
chooses (so their percentiles are known exactly), with a chosen number of tokens per chunk.
The measured percentiles must come out within a stated error of the configured ones
(tests/endpoint/test_load.py).
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from infersuite.serving.httpd import BackgroundServer


@dataclass(frozen=True)
class StubTiming:
    """TTFT ~ U(ttft_s ± spread), chunk gap ~ U(itl_s · tokens_per_chunk ± spread)."""

    ttft_s: float = 0.020
    itl_s: float = 0.005
    spread: float = 0.2  # half-width of the uniform, as a fraction of its centre
    tokens_per_chunk: int = 1

    def quantile(self, metric: str, q: float) -> float:
        """The configured distribution's q-quantile (q in [0, 1]) of ttft_s or of the
        per-token ITL."""
        centre = self.ttft_s if metric == "ttft_s" else self.itl_s
        return centre * (1 - self.spread + 2 * self.spread * q)


class StubServer(BackgroundServer):
    """``StubServer(StubTiming(...)).start()``; ``url``; ``stop()``. ``slowdown`` scales every
    gap after the first token (a planted ITL regression)."""

    def __init__(self, timing: StubTiming, seed: int = 0, slowdown: float = 1.0,
                 fail_every: int = 0, cut_every: int = 0) -> None:
        self.timing = timing
        self.slowdown = slowdown
        self.fail_every = fail_every  # every n-th request gets HTTP 500 (0: none)
        self.cut_every = cut_every  # every n-th stream stops halfway, without [DONE]
        self.requests = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        super().__init__(_handler(self))

    def draw(self, centre: float) -> float:
        with self._lock:
            u = self._rng.random()
        return centre * (1 - self.timing.spread + 2 * self.timing.spread * u)


def _event(text: str, tokens: list[str], finish: str | None) -> bytes:
    choice = {"index": 0, "text": text, "finish_reason": finish,
              "logprobs": {"tokens": tokens, "token_logprobs": [-1.0] * len(tokens)}}
    return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # each chunk leaves when written (TCP_NODELAY)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if not self.path.startswith("/v1/models"):
                self.send_error(404)
                return
            self._json({"data": [{"id": "stub"}]})

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with stub._lock:
                stub.requests += 1
                fail = stub.fail_every and stub.requests % stub.fail_every == 0
                cut = stub.cut_every and stub.requests % stub.cut_every == 0
            if fail:
                data = b'{"error": {"message": "planted failure", "code": 500}}'
                self.send_response(500)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            n = int(request.get("max_tokens") or 16)
            if not request.get("stream"):
                time.sleep(stub.draw(stub.timing.ttft_s))
                text = "".join(f"t{i}" for i in range(n))
                self._json({"choices": [{"index": 0, "text": text, "finish_reason": "length",
                                         "logprobs": None}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": n,
                                      "total_tokens": n + 1}})
                return
            per = stub.timing.tokens_per_chunk
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            time.sleep(stub.draw(stub.timing.ttft_s))
            sent = 0
            while sent < n:
                if cut and sent >= n // 2:
                    self._chunk(b"")  # the body ends here: no usage, no [DONE]
                    return
                tokens = [f"t{sent + i}" for i in range(min(per, n - sent))]
                if sent:
                    time.sleep(stub.draw(stub.timing.itl_s * len(tokens)) * stub.slowdown)
                sent += len(tokens)
                self._chunk(_event("".join(tokens), tokens, "length" if sent >= n else None))
            usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
            self._chunk(b"data: " + json.dumps({"choices": [], "usage": usage}).encode()
                        + b"\n\n")
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler

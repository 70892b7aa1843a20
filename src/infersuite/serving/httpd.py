"""A small HTTP server on 127.0.0.1 in a background thread, for the suite's own servers
(the fault proxy, the stub server): one thread per connection, a deep accept queue so a
burst of concurrent requests is not refused, and no traceback when a client closes its
connection."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from infersuite.serving.process import LOOPBACK


class QuietThreadingServer(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class BackgroundServer:
    """``start()`` serves `handler` on a free loopback port; ``url``; ``stop()``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = QuietThreadingServer((LOOPBACK, 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, started or not
            self._server.shutdown()
        self._server.server_close()

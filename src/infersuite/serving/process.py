"""A server process started by the suite: loopback only, a free port, a health check, a
captured log, and always stopped.

The command runs in its own process group with its output in a log file; ``stop()`` sends
SIGTERM to the group, then SIGKILL after a grace period. On Linux the child also gets
``PR_SET_PDEATHSIG``, so it dies with the pytest process even when that is killed outright
(the signal reaches the server process itself, not processes it started, and follows the
thread that started it: the suite starts servers from pytest's main thread); an ``atexit``
hook stops what is still running when the interpreter exits normally.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
_RUNNING: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


class ServerError(RuntimeError):
    """A server that would not start, did not become healthy, or died; the message carries
    the tail of its log."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _death_signal() -> Callable[[], None] | None:
    """A function for the child to run before exec (Linux): ask for SIGTERM when the
    parent dies (PR_SET_PDEATHSIG), and exit at once if the parent is already gone. libc
    is loaded here, in the parent: loading a library in a child forked from a threaded
    process can deadlock."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None
    parent = os.getpid()

    def in_child() -> None:  # pragma: no cover - runs in the child before exec
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return in_child


def render_command(template: str | Sequence[str], port: int, host: str = LOOPBACK) -> list[str]:
    """A command line with ``{port}`` and ``{host}`` filled in (a string is split like a
    shell would)."""
    words = shlex.split(template) if isinstance(template, str) else list(template)
    return [word.replace("{port}", str(port)).replace("{host}", host) for word in words]


class ServerProcess:
    """One server on 127.0.0.1: ``start()`` waits until ``health_path`` answers 200."""

    def __init__(self, command: Sequence[str], port: int, log_path: Path, *,
                 health_path: str = "/v1/models", env: dict[str, str] | None = None,
                 startup_timeout_s: float = 120.0, host: str = LOOPBACK) -> None:
        self.command = list(command)
        self.port = port
        self.host = host
        self.log_path = log_path
        self.health_path = health_path
        self.env = env
        self.startup_timeout_s = startup_timeout_s
        self.startup_s: float | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _failure(self, what: str) -> ServerError:
        return ServerError(f"server `{shlex.join(self.command)}` {what}; last lines of its "
                           f"log ({self.log_path}):\n{self.log_tail()}")

    def start(self) -> ServerProcess:
        import httpx

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        began = time.perf_counter()
        with self.log_path.open("ab") as log:
            try:
                self._process = subprocess.Popen(
                    self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, start_new_session=True, preexec_fn=_death_signal())
            except OSError as exc:
                raise ServerError(f"cannot start `{shlex.join(self.command)}`: {exc}") from exc
        _RUNNING.add(self)
        deadline = began + self.startup_timeout_s
        url = self.base_url + self.health_path
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop(grace_s=3.0)  # what it started (its process group) goes too
                raise self._failure(f"exited with status {code} before answering {url}")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise self._failure(f"did not answer {url} within {self.startup_timeout_s:g} s")
            time.sleep(0.1)
        self.startup_s = time.perf_counter() - began
        return self

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, grace_s: float = 10.0) -> int | None:
        """Stop the whole process group (SIGTERM, then SIGKILL); the exit status."""
        process, self._process = self._process, None
        _RUNNING.discard(self)
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(ProcessLookupError):  # stragglers in the group
            os.killpg(process.pid, signal.SIGKILL)
        return process.returncode


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop(grace_s=3.0)

"""Run an engine in a worker process: a native crash fails its own calls, not the run.

A native runtime can segfault or abort, and in-process that ends the whole pytest run.
``IsolatedEngine`` starts a child (``python -m infersuite.engines.worker``) that builds
the real engine with ``target(payload)`` ("module:function", a picklable payload) and
answers each protocol call over a socket, tensors travelling as numpy arrays. Cache
states stay in the child; the parent holds handles. When the child dies the call raises
EngineError naming the signal (SIGSEGV ...), the call and its shapes, the engine spec and
the child's last stderr lines; the next call starts a fresh child (earlier cache states
are gone with the old one). ``close()`` and a finalizer close the socket, terminate,
wait, then kill, so no child outlives the run, Ctrl-C included; a child whose parent
dies gets SIGKILL (Linux) or an end-of-file and exits.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable
from typing import Any

from infersuite.engines.base import Engine, EngineError, EngineSpec, EngineUnsupported
from infersuite.engines.worker_wire import (
    StateRef,
    child_main,
    describe_args,
    from_wire,
    recv,
    send,
    to_wire,
)

STDERR_TAIL_CHARS = 2000
STOP_WAIT_S = 3.0


class WorkerState:
    """The parent's handle on a cache state that lives in the worker."""

    def __init__(self, ref: StateRef, drops: list[tuple[int, int]]) -> None:
        self.ref = ref
        # freed in the child on the next call, if that child is still the one holding it
        weakref.finalize(self, drops.append, (ref.generation, ref.key))


def _stop(proc: subprocess.Popen[bytes], sock: socket.socket, stderr: Any) -> None:
    """Close the socket (the child exits on EOF), then terminate, wait, kill."""
    sock.close()
    try:
        proc.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stderr.close()


def worker_cpus(count: int | None) -> set[int] | None:
    """The CPUs a worker asking for `count` runs on: the last `count` of this process's
    CPUs, the same ones for every such worker. Two workers compared in an A/B run then
    share their cores and never hold one of their own: on a shared host one core can run
    several percent slower than another for minutes (whatever else the host runs there),
    and a worker that stayed on it read as a regression or an improvement of its code
    (docs/gate.md). Their rounds alternate, so sharing costs nothing. None (no pinning)
    without `count`, where the platform cannot pin (not Linux), or when `count` is not
    below this process's CPUs (then there is no choice to make)."""
    if not count or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if count >= len(allowed):
        return None
    return set(allowed[-count:])


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            return f"died of {signal.Signals(-returncode).name}"
        except ValueError:
            return f"died of signal {-returncode}"
    return f"exited with status {returncode}"


class IsolatedEngine(Engine):
    """An engine whose every call runs in a restartable child process."""

    name = "isolated"

    def __init__(self, spec: EngineSpec, target: str, payload: Any,
                 tokenizer: Any | None = None, timeout_s: float = 600.0,
                 build_timeout_s: float = 600.0, python: str | None = None,
                 pythonpath: list[str] | None = None, cpus: int | None = None) -> None:
        """`python`: the worker's interpreter (default: this one); `pythonpath`: its
        PYTHONPATH (default: this process's sys.path, so it imports what this one does);
        `cpus`: run the worker on that many CPUs (``worker_cpus``), else wherever the
        scheduler puts it."""
        self.target, self.payload = target, payload
        self.cpus = worker_cpus(cpus)
        self.python, self.pythonpath = python or sys.executable, pythonpath
        self.timeout_s, self.build_timeout_s = timeout_s, build_timeout_s
        self._generation = itertools.count()
        self._worker: tuple[int, subprocess.Popen[bytes], socket.socket, Any] | None = None
        self._finalizer: Any = None
        self._drops: list[tuple[int, int]] = []  # (worker generation, state key)
        self.spec = spec  # _start's messages name it
        hello = self._start()
        super().__init__(spec, hello["vocab_size"], hello["pad_id"], hello["eos_ids"],
                         tokenizer, hello["precision"], hello["compute_dtype"])
        self.name, self.device = hello["name"], hello["device"]
        self.capabilities = frozenset(hello["capabilities"])
        self.limitations = dict(hello["limitations"])
        self._description = dict(hello["describe"])

    # -- the child ---------------------------------------------------------------------

    def _start(self) -> dict[str, Any]:
        parent_end, child_end = socket.socketpair()
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the finalizer closes it
        path = self.pythonpath if self.pythonpath is not None else sys.path
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
        with child_end:
            proc = subprocess.Popen(
                [self.python, "-m", "infersuite.engines.worker", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, stderr=stderr,
                env=env)
        self._finalizer = weakref.finalize(self, _stop, proc, parent_end, stderr)
        if self.cpus is not None:  # before the child builds anything: its threads inherit it
            os.sched_setaffinity(proc.pid, self.cpus)
        generation = next(self._generation)
        self._worker = (generation, proc, parent_end, stderr)
        self._drops.clear()
        reply = self._exchange(("build", self.target, self.payload, generation), "build", ())
        return dict(reply)

    def _stop_worker(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._worker, self._finalizer = None, None

    def close(self) -> None:
        self._stop_worker()

    def _stderr_tail(self) -> str:
        assert self._worker is not None
        fd = self._worker[3].fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - STDERR_TAIL_CHARS)
        text = os.pread(fd, size - start, start).decode("utf-8", "replace").strip()
        return f"; its last stderr:\n{text}" if text else "; it wrote nothing to stderr"

    def _died(self, call: str, args: tuple[Any, ...], cause: str | None = None) -> EngineError:
        assert self._worker is not None
        _, proc, _, _ = self._worker
        try:
            returncode: int | None = proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            returncode = None
        what = cause or describe_exit(returncode)
        message = (f"engine {self.spec}: worker process {proc.pid} {what} "
                   f"during {call}({describe_args(args)}); the next call starts a fresh worker"
                   f"{self._stderr_tail()}")
        self._stop_worker()
        return EngineError(message)

    def _exchange(self, message: tuple[Any, ...], call: str, args: tuple[Any, ...],
                  on_tick: Callable[[], None] | None = None) -> Any:
        assert self._worker is not None
        sock = self._worker[2]
        timeout_s = self.build_timeout_s if call == "build" else self.timeout_s
        try:
            send(sock, message)
            while True:
                if not _readable(sock, timeout_s):
                    self._worker[1].kill()
                    raise self._died(call, args, f"did not answer within {timeout_s:g} s "
                                     "(killed)")
                reply = recv(sock)
                if reply[0] != "tick":
                    break
                if on_tick is not None:
                    on_tick()
        except (EOFError, OSError):
            raise self._died(call, args) from None
        except BaseException:  # Ctrl-C mid-call: the child's answer would desync the socket
            self._stop_worker()
            raise
        return self._answer(reply, call)

    def _answer(self, reply: tuple[Any, ...], call: str) -> Any:
        if reply[0] == "ok":
            return reply[1]
        _, kind, text, trace = reply
        if call == "build":
            self._stop_worker()
        error = EngineUnsupported if kind == "EngineUnsupported" else EngineError
        if kind in ("EngineUnsupported", "EngineError"):
            raise error(text)
        raise EngineError(f"engine {self.spec}: {call} raised {kind}: {text} (in the worker "
                          f"process)\n{trace}")

    def _call(self, call: str, *args: Any, on_tick: Callable[[], None] | None = None,
              **kwargs: Any) -> Any:
        if self._worker is None:
            self._start()
        assert self._worker is not None
        generation = self._worker[0]
        for arg in args:
            if isinstance(arg, WorkerState) and arg.ref.generation != generation:
                raise EngineError(f"engine {self.spec}: {call} got a cache state from worker "
                                  f"#{arg.ref.generation}, which has died since (this is "
                                  f"worker #{generation}); prefill again")
        wire_args = tuple(a.ref if isinstance(a, WorkerState) else a for a in args)
        # keys of states from an earlier (dead) worker mean nothing to this one
        drops = [key for gen, key in self._drops if gen == generation]
        self._drops[:] = []
        message = ("call", call, to_wire(wire_args), to_wire(kwargs), drops,
                   on_tick is not None)
        result = from_wire(self._exchange(message, call, args, on_tick))
        return self._wrap_states(result)

    def _wrap_states(self, result: Any) -> Any:
        if isinstance(result, StateRef):
            return WorkerState(result, self._drops)
        if isinstance(result, tuple):
            return tuple(self._wrap_states(item) for item in result)
        return result

    # -- the protocol ------------------------------------------------------------------

    def describe(self) -> dict[str, str]:
        pinned = {} if self.cpus is None else {
            "worker_cpus": ",".join(str(c) for c in sorted(self.cpus))}
        return {**self._description, **pinned,
                "isolation": "worker process (infersuite.engines.worker)"}

    def forward_logits(self, input_ids: Any, attention_mask: Any) -> Any:
        return self._call("forward_logits", input_ids, attention_mask)

    def generate_greedy(self, input_ids: Any, attention_mask: Any, n_new: int) -> Any:
        return self._call("generate_greedy", input_ids, attention_mask, n_new)

    def prefill(self, input_ids: Any, attention_mask: Any) -> Any:
        return self._call("prefill", input_ids, attention_mask)

    def decode_step(self, state: Any, input_ids: Any, attention_mask: Any) -> Any:
        return self._call("decode_step", state, input_ids, attention_mask)

    def fork(self, state: Any) -> Any:
        return self._call("fork", state)

    def cache_tensors(self, state: Any) -> Any:
        return self._call("cache_tensors", state)

    def sample(self, input_ids: Any, attention_mask: Any, n_new: int, *, seed: int,
               temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None) -> Any:
        return self._call("sample", input_ids, attention_mask, n_new, seed=seed,
                          temperature=temperature, top_k=top_k, top_p=top_p)

    def generate_stream(self, input_ids: Any, attention_mask: Any, n_new: int,
                        on_token: Callable[[], None] | None) -> Any:
        """`on_token` runs here, as each of the worker's tokens arrives over the socket
        (the socket's latency included)."""
        if on_token is None:
            return self._call("generate_stream", input_ids, attention_mask, n_new, None)
        return self._call("generate_stream", input_ids, attention_mask, n_new,
                          on_tick=on_token)


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    import select

    return bool(select.select([sock], [], [], timeout_s)[0])


if __name__ == "__main__":
    child_main(int(sys.argv[1]))

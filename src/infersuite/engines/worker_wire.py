"""The worker process's side of ``engines.worker``: framing, tensors as numpy, the loop.

Messages are length-prefixed pickles on a socket. Parent to child: ``("build", target,
payload, generation)`` once, then ``("call", name, args, kwargs, dropped_state_keys,
streams)``. Child to parent: ``("ok", value)``, ``("error", type_name, text, traceback)``
or, during ``generate_stream``, ``("tick",)`` per token. Cache states returned by
``prefill``/``fork`` stay in the child's table; the parent gets a ``StateRef``.
"""

from __future__ import annotations

import itertools
import pickle
import signal
import socket
import struct
import sys
import traceback
from dataclasses import dataclass
from typing import Any

_HEADER = struct.Struct("!Q")
# call -> where its result holds a cache state (None: the result is one)
STATE_RESULTS: dict[str, int | None] = {"prefill": 1, "fork": None}


@dataclass(frozen=True)
class StateRef:
    """A cache state kept in worker `generation` under `key`."""

    generation: int
    key: int


@dataclass(frozen=True)
class WireTensor:
    """A torch tensor as a numpy array (bfloat16 travels as its int16 bits)."""

    array: Any
    dtype: str


def send(sock: socket.socket, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other end of the worker socket closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket) -> Any:
    (size,) = _HEADER.unpack(_read_exactly(sock, _HEADER.size))
    return pickle.loads(_read_exactly(sock, size))


def _is_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def to_wire(obj: Any) -> Any:
    """torch tensors -> WireTensor, inside tuples, lists and dicts."""
    if _is_tensor(obj):
        tensor = obj.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":
            return WireTensor(tensor.view(sys.modules["torch"].int16).numpy(), "bfloat16")
        return WireTensor(tensor.numpy(), str(tensor.dtype).removeprefix("torch."))
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_wire(item) for item in obj)
    if isinstance(obj, dict):
        return {key: to_wire(value) for key, value in obj.items()}
    return obj


def from_wire(obj: Any) -> Any:
    """The inverse of to_wire."""
    if isinstance(obj, WireTensor):
        import torch

        tensor = torch.from_numpy(obj.array)
        return tensor.view(torch.bfloat16) if obj.dtype == "bfloat16" else tensor
    if isinstance(obj, (tuple, list)):
        return type(obj)(from_wire(item) for item in obj)
    if isinstance(obj, dict):
        return {key: from_wire(value) for key, value in obj.items()}
    return obj


def describe_args(args: tuple[Any, ...]) -> str:
    """``input_ids`` as ``int64[1, 7]``, states as ``state``: what an error names."""
    parts = []
    for arg in args:
        if _is_tensor(arg):
            parts.append(f"{str(arg.dtype).removeprefix('torch.')}{list(arg.shape)}")
        elif type(arg).__name__ in ("WorkerState", "StateRef"):
            parts.append("<cache state>")
        else:
            parts.append(repr(arg))
    return ", ".join(parts)


def error_reply(exc: BaseException) -> tuple[str, str, str, str]:
    return ("error", type(exc).__name__, str(exc), traceback.format_exc(limit=8))


# -- the child process -----------------------------------------------------------------

def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the parent dies (else it would see EOF)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGKILL))


def _environment() -> dict[str, str]:
    """Which Python environment the worker runs in: interpreter, prefix, where its
    infersuite comes from, and the versions of the stack it imported."""
    import importlib.metadata
    from pathlib import Path

    import infersuite

    found = {"worker_python": sys.executable, "worker_prefix": sys.prefix,
             "worker_infersuite": str(Path(infersuite.__file__).resolve().parent)}
    if "torch" in sys.modules:
        found["worker_threads"] = str(sys.modules["torch"].get_num_threads())
    for package in ("torch", "transformers", "numpy"):
        if package in sys.modules:
            try:
                found[f"worker_{package}"] = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                found[f"worker_{package}"] = "unknown"
    return found


def _hello(engine: Any) -> dict[str, Any]:
    return {"name": engine.name, "capabilities": sorted(engine.capabilities),
            "vocab_size": engine.vocab_size, "pad_id": engine.pad_id,
            "eos_ids": list(engine.eos_ids), "precision": engine.precision,
            "compute_dtype": engine.compute_dtype,
            "device": engine.device, "limitations": dict(engine.limitations),
            "describe": {**engine.describe(), **_environment()}}


def _load(target: str) -> Any:
    import importlib

    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute or "create")


class _States:
    def __init__(self, generation: int) -> None:
        self.generation, self.keys = generation, itertools.count()
        self.table: dict[int, Any] = {}

    def keep(self, state: Any) -> StateRef:
        ref = StateRef(self.generation, next(self.keys))
        self.table[ref.key] = state
        return ref

    def resolve(self, arg: Any) -> Any:
        if not isinstance(arg, StateRef):
            return arg
        if arg.key not in self.table:
            raise KeyError(f"cache state {arg.key} is not held by this worker (freed?)")
        return self.table[arg.key]

    def store(self, call: str, result: Any) -> Any:
        if call not in STATE_RESULTS:
            return result
        index = STATE_RESULTS[call]
        if index is None:
            return self.keep(result)
        return (*result[:index], self.keep(result[index]), *result[index + 1:])


def _serve(sock: socket.socket, engine: Any, states: _States) -> None:
    while True:
        try:
            _, call, args, kwargs, drops, streams = recv(sock)
        except EOFError:
            return
        for key in drops:
            states.table.pop(key, None)
        try:
            args = tuple(states.resolve(a) for a in from_wire(args))
            kwargs = from_wire(kwargs)
            if streams:
                kwargs["on_token"] = lambda: send(sock, ("tick",))
            result = states.store(call, getattr(engine, call)(*args, **kwargs))
            reply: tuple[Any, ...] = ("ok", to_wire(result))
        except Exception as exc:
            reply = error_reply(exc)
        send(sock, reply)


def child_main(fd: int) -> None:
    """The worker: build the engine from the first message, then answer calls until EOF."""
    import faulthandler

    faulthandler.enable()  # a native crash prints the Python stack to stderr first
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    sock = socket.socket(fileno=fd)
    try:
        _, target, payload, generation = recv(sock)
    except EOFError:
        return
    try:
        engine = _load(target)(payload)
        send(sock, ("ok", _hello(engine)))
    except Exception as exc:
        send(sock, error_reply(exc))
        return
    try:
        _serve(sock, engine, _States(generation))
    finally:
        engine.close()

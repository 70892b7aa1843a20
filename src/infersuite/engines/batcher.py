"""Batching engines under test: a dynamic batcher (max batch size / max wait) over
hf.generate_greedy, and a driver for transformers' continuous batching manager."""

from __future__ import annotations

import dataclasses
import inspect
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infersuite.engines import hf

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from infersuite.engines.base import Engine


@dataclass(frozen=True)
class Request:
    request_id: str
    prompt: tuple[int, ...]
    max_new_tokens: int
    arrival_s: float = 0.0


@dataclass(frozen=True)
class Batch:
    requests: tuple[Request, ...]
    dispatch_s: float
    reason: str  # "full": reached max_batch_size; "timeout": the oldest waited max_wait_s


@dataclass(frozen=True)
class Completion:
    request_id: str
    tokens: list[int]
    logits: torch.Tensor  # [max_new_tokens, vocab], float32
    batch_index: int
    batch_size: int


def plan_batches(requests: Sequence[Request], max_batch_size: int,
                 max_wait_s: float) -> list[Batch]:
    """Group requests as a dynamic batcher does, on a simulated clock.

    A batch opens when a request arrives at an empty queue. It is dispatched as
    soon as it holds max_batch_size requests, or max_wait_s after it opened,
    whichever comes first; requests arriving by then join it in arrival order.
    """
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    if max_wait_s < 0:
        raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
    pending = sorted(requests, key=lambda r: r.arrival_s)
    batches: list[Batch] = []
    start = 0
    while start < len(pending):
        deadline = pending[start].arrival_s + max_wait_s
        end = start + 1
        while (end < len(pending) and end - start < max_batch_size
               and pending[end].arrival_s <= deadline):
            end += 1
        members = tuple(pending[start:end])
        if len(members) == max_batch_size:
            batches.append(Batch(members, members[-1].arrival_s, "full"))
        else:
            batches.append(Batch(members, deadline, "timeout"))
        start = end
    return batches


def run_batch(engine: Engine, batch: Batch, batch_index: int) -> list[Completion]:
    """One left-padded greedy generation on `engine` (padded_batch) for the whole batch;
    each request keeps its first max_new_tokens tokens (EOS is suppressed, so lengths
    are fixed)."""
    ids, mask = hf.pad_left([r.prompt for r in batch.requests], engine.pad_id)
    n_new = max(r.max_new_tokens for r in batch.requests)
    tokens, logits = engine.generate_greedy(ids, mask, n_new)
    return [
        Completion(r.request_id, tokens[row, : r.max_new_tokens].tolist(),
                   logits[row, : r.max_new_tokens].cpu(), batch_index, len(batch.requests))
        for row, r in enumerate(batch.requests)
    ]


def run_planned(engine: Engine, requests: Sequence[Request], max_batch_size: int,
                max_wait_s: float) -> tuple[list[Batch], dict[str, Completion]]:
    """Plan the batches on the simulated clock, then run each one on `engine`."""
    batches = plan_batches(requests, max_batch_size, max_wait_s)
    done: dict[str, Completion] = {}
    for index, batch in enumerate(batches):
        for completion in run_batch(engine, batch, index):
            done[completion.request_id] = completion
    return batches, done


BatchRunner = Callable[[Batch, int], list[Completion]]


class DynamicBatcher:
    """A threaded dynamic batcher: submit() from any thread returns a Future;
    a worker collects requests until max_batch_size or max_wait_s and runs them.

    `clock` and the runner are injectable so tests can drive it without a model.
    """

    def __init__(self, runner: BatchRunner, max_batch_size: int, max_wait_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError(f"need max_batch_size >= 1 and max_wait_s >= 0, got "
                             f"{max_batch_size} and {max_wait_s}")
        self._runner, self._clock = runner, clock
        self.max_batch_size, self.max_wait_s = max_batch_size, max_wait_s
        self._queue: queue.Queue[tuple[Request, Future[Completion]] | None] = queue.Queue()
        self.batches: list[Batch] = []
        self._worker = threading.Thread(target=self._loop, name="dynamic-batcher", daemon=True)
        self._worker.start()

    def submit(self, request: Request) -> Future[Completion]:
        future: Future[Completion] = Future()
        self._queue.put((request, future))
        return future

    def close(self, timeout_s: float = 30.0) -> None:
        self._queue.put(None)
        self._worker.join(timeout_s)

    def __enter__(self) -> DynamicBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _collect(self, first: tuple[Request, Future[Completion]]
                 ) -> tuple[list[tuple[Request, Future[Completion]]], str, bool]:
        items, deadline = [first], self._clock() + self.max_wait_s
        while len(items) < self.max_batch_size:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return items, "timeout", False
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                return items, "timeout", False
            if item is None:
                return items, "drain", True
            items.append(item)
        return items, "full", False

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            items, reason, stopping = self._collect(first)
            batch = Batch(tuple(r for r, _ in items), self._clock(), reason)
            self.batches.append(batch)
            try:
                results = {c.request_id: c for c in self._runner(batch, len(self.batches) - 1)}
            except Exception as exc:  # hand the engine's error to every caller waiting on it
                for _, future in items:
                    future.set_exception(exc)
                continue
            for request, future in items:
                future.set_result(results[request.request_id])


# --- transformers continuous batching -------------------------------------------------


class ContinuousBatchingUnavailable(RuntimeError):
    """This transformers version or model offers no continuous batching API."""


def _continuous_batching_config(**wanted: Any) -> Any:
    """A ContinuousBatchingConfig with the fields this transformers version has."""
    try:
        from transformers.generation import ContinuousBatchingConfig
    except ImportError:
        return None
    names = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)} if (
        dataclasses.is_dataclass(ContinuousBatchingConfig)) else set(
        inspect.signature(ContinuousBatchingConfig).parameters)
    return ContinuousBatchingConfig(**{k: v for k, v in wanted.items() if k in names})


def run_continuous_batching(model: PreTrainedModel, prompts: Sequence[Sequence[int]],
                            max_new_tokens: Sequence[int], max_requests_per_batch: int,
                            timeout_s: float = 60.0) -> list[Any]:
    """Submit every prompt to one continuous batching manager, each with its own
    max_new_tokens and EOS disabled; return the GenerationOutputs in prompt order."""
    from transformers import GenerationConfig

    if not hasattr(model, "continuous_batching_context_manager"):
        raise ContinuousBatchingUnavailable(
            f"{type(model).__name__} has no continuous_batching_context_manager "
            "(transformers without ContinuousMixin)")
    config = GenerationConfig(do_sample=False, max_new_tokens=max(max_new_tokens),
                              eos_token_id=-1, pad_token_id=hf.pad_id_of(model))
    cb_config = _continuous_batching_config(
        max_requests_per_batch=max_requests_per_batch, num_blocks=64,
        max_batch_tokens=64, use_cuda_graph=False)
    kwargs = {"continuous_batching_config": cb_config} if cb_config is not None else {}
    results: dict[str, Any] = {}
    with model.continuous_batching_context_manager(generation_config=config, block=True,  # type: ignore[operator]
                                                   timeout=5, **kwargs) as manager:
        accepts_eos = "eos_token_id" in inspect.signature(manager.add_request).parameters
        extra = {"eos_token_id": -1} if accepts_eos else {}
        ids = [manager.add_request(input_ids=list(p), max_new_tokens=n, **extra)
               for p, n in zip(prompts, max_new_tokens, strict=True)]
        deadline = time.monotonic() + timeout_s
        while len(results) < len(ids) and time.monotonic() < deadline:
            output = manager.get_result(timeout=1)
            if output is not None and output.is_finished():
                results[output.request_id] = output
    missing = [i for i in ids if i not in results]
    if missing:
        raise TimeoutError(f"continuous batching returned {len(results)}/{len(ids)} requests "
                           f"within {timeout_s:g} s; missing {missing}")
    return [results[i] for i in ids]

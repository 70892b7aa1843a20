"""The dynamic batcher: grouping on a simulated clock, and the threaded engine."""

from __future__ import annotations

import threading

import pytest
import torch

from infersuite.engines.batcher import Batch, Completion, DynamicBatcher, Request, plan_batches


def _req(i: int, arrival_s: float) -> Request:
    return Request(f"r{i}", (1, 2, 3)[: 1 + i % 3], max_new_tokens=2, arrival_s=arrival_s)


def test_plan_dispatches_full_batches_at_the_last_arrival():
    batches = plan_batches([_req(i, 0.001 * i) for i in range(5)], max_batch_size=2,
                           max_wait_s=1.0)
    assert [[r.request_id for r in b.requests] for b in batches] == [
        ["r0", "r1"], ["r2", "r3"], ["r4"]]
    assert [b.reason for b in batches] == ["full", "full", "timeout"]
    assert batches[0].dispatch_s == pytest.approx(0.001)
    assert batches[2].dispatch_s == pytest.approx(1.004)


def test_plan_times_out_before_the_batch_fills():
    arrivals = [0.0, 0.02, 0.2, 0.21, 0.5]
    batches = plan_batches([_req(i, t) for i, t in enumerate(arrivals)], max_batch_size=4,
                           max_wait_s=0.05)
    assert [[r.request_id for r in b.requests] for b in batches] == [
        ["r0", "r1"], ["r2", "r3"], ["r4"]]
    assert all(b.reason == "timeout" for b in batches)
    assert [b.dispatch_s for b in batches] == pytest.approx([0.05, 0.25, 0.55])


def test_plan_orders_by_arrival_and_rejects_bad_limits():
    batches = plan_batches([_req(1, 0.3), _req(0, 0.1)], max_batch_size=8, max_wait_s=0.5)
    assert [r.request_id for r in batches[0].requests] == ["r0", "r1"]
    with pytest.raises(ValueError, match="max_batch_size"):
        plan_batches([], max_batch_size=0, max_wait_s=0.1)


def _echo_runner(seen: list[Batch]):
    def run(batch: Batch, index: int) -> list[Completion]:
        seen.append(batch)
        return [Completion(r.request_id, list(r.prompt), torch.zeros(1, 1), index,
                           len(batch.requests)) for r in batch.requests]
    return run


def test_threaded_batcher_fills_batches_and_answers_each_caller():
    seen: list[Batch] = []
    gate = threading.Event()

    def slow_runner(batch: Batch, index: int) -> list[Completion]:
        gate.wait(5)  # hold the worker so the rest queue up
        return _echo_runner(seen)(batch, index)

    with DynamicBatcher(slow_runner, max_batch_size=3, max_wait_s=0.2) as engine:
        futures = [engine.submit(_req(i, 0.0)) for i in range(7)]
        gate.set()
        results = [f.result(timeout=10) for f in futures]
    assert [r.request_id for r in results] == [f"r{i}" for i in range(7)]
    assert [r.tokens for r in results] == [list(_req(i, 0).prompt) for i in range(7)]
    assert sum(len(b.requests) for b in seen) == 7
    assert max(len(b.requests) for b in seen) == 3


def test_threaded_batcher_dispatches_a_partial_batch_after_max_wait():
    seen: list[Batch] = []
    with DynamicBatcher(_echo_runner(seen), max_batch_size=8, max_wait_s=0.01) as engine:
        result = engine.submit(_req(0, 0.0)).result(timeout=5)
    assert result.batch_size == 1
    assert seen[0].reason == "timeout"


def test_threaded_batcher_passes_engine_errors_to_callers():
    def failing(batch: Batch, index: int) -> list[Completion]:
        raise RuntimeError("out of memory")

    with DynamicBatcher(failing, max_batch_size=2, max_wait_s=0.01) as engine:
        future = engine.submit(_req(0, 0.0))
        with pytest.raises(RuntimeError, match="out of memory"):
            future.result(timeout=5)

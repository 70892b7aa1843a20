"""The batch sweep and Poisson drivers with fake runners: OOM and timeouts end a sweep."""

from __future__ import annotations

import pytest
import torch

from infersuite.measure.arrivals import (
    compute_poisson_arrivals,
    run_poisson_point,
    run_poisson_sweep,
)
from infersuite.measure.sweep import (
    SweepLimits,
    is_out_of_memory,
    powers_of_two,
    run_batch_sweep,
)
from infersuite.stats.knee import analyze_sweep


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeRunner:
    """Round time 10 ms + 1 ms per request; raises ``fail`` at ``fail_at``."""

    def __init__(self, clock: FakeClock, fail_at: int | None = None,
                 fail: BaseException | None = None, slow_at: int | None = None,
                 slow_first: bool = True) -> None:
        self.clock, self.fail_at, self.fail, self.slow_at = clock, fail_at, fail, slow_at
        self.slow_first = slow_first
        self.calls: list[int] = []

    def generate(self, batch: int) -> float:
        first = batch not in self.calls  # a new shape's first run is slow (allocations...)
        self.calls.append(batch)
        if batch == self.fail_at:
            assert self.fail is not None
            raise self.fail
        seconds = 100.0 if batch == self.slow_at else 0.010 + 0.001 * batch
        if first and self.slow_first:
            seconds += 0.5
        self.clock.t += seconds
        return seconds

    def profile(self, batch: int) -> tuple[float, list[float]]:
        return 0.002 * batch, [0.001] * 4


def test_powers_of_two():
    assert powers_of_two(64) == [1, 2, 4, 8, 16, 32, 64]
    assert powers_of_two(48) == [1, 2, 4, 8, 16, 32]
    with pytest.raises(ValueError, match="max_batch=0"):
        powers_of_two(0)


def _cpu_allocation_failure() -> RuntimeError:
    """What torch's CPU allocator really raises when malloc fails."""
    import torch

    try:
        torch.empty(2**50, dtype=torch.uint8)
    except RuntimeError as exc:
        return exc
    raise AssertionError("a 1 PiB allocation succeeded")


@pytest.mark.parametrize("exc", [
    MemoryError(), torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    torch.cuda.OutOfMemoryError("CUDA out of memory."),
])
def test_out_of_memory_is_recognised_by_type(exc):
    assert is_out_of_memory(exc)


def test_cpu_allocator_failure_is_out_of_memory():
    exc = _cpu_allocation_failure()
    assert type(exc) is RuntimeError
    assert is_out_of_memory(exc)


@pytest.mark.parametrize("exc", [
    RuntimeError("shape mismatch"), ValueError("out of memory"),
    RuntimeError("CUDA out of memory"),  # the words alone, not torch's OutOfMemoryError
    RuntimeError("CUDA error: an illegal memory access was encountered"),
])
def test_other_errors_are_not_out_of_memory(exc):
    assert not is_out_of_memory(exc)


def test_full_sweep_rounds_samples_and_throughput():
    clock = FakeClock()
    points = run_batch_sweep(FakeRunner(clock), [1, 2, 4], 8, SweepLimits(budget_s=1e6),
                             now=clock)
    assert [p.status for p in points] == ["ok", "ok", "ok"]
    # a round's b requests share one time: one sample per round, 368 rounds for a p99 CI
    assert [len(p.round_s) for p in points] == [368, 368, 368]
    assert len(points[2].latency_samples_s) == 368
    assert points[1].tokens_per_s == pytest.approx(2 * 8 / 0.012)
    assert points[1].requests_per_s == pytest.approx(2 / 0.012)
    sweep_point = points[0].to_sweep_point()
    assert sweep_point.latency_p50 == pytest.approx(0.011)
    assert sweep_point.latency_p99_upper == pytest.approx(0.011)


def test_each_point_warms_up_before_its_timed_rounds():
    """The first run at each batch size (slower by 0.5 s here) is not among its samples;
    without the warm-up round it would be every point's worst sample."""
    clock = FakeClock()
    runner = FakeRunner(clock)
    points = run_batch_sweep(runner, [1, 2, 4], 8, SweepLimits(budget_s=1e6, max_rounds=5),
                             now=clock)
    assert [len(p.round_s) for p in points] == [5, 5, 5]
    assert runner.calls == [1] * 6 + [2] * 6 + [4] * 6
    assert all(max(p.round_s) < 0.1 for p in points)
    cold = run_batch_sweep(FakeRunner(FakeClock()), [1], 8,
                           SweepLimits(budget_s=1e6, max_rounds=5, warmup_rounds=0),
                           now=FakeClock())
    assert max(cold[0].round_s) > 0.5  # control: the cold run lands in the samples


@pytest.mark.parametrize("fail", [MemoryError("no"), torch.OutOfMemoryError("CUDA out of memory")])
def test_oom_point_is_recorded_and_ends_the_sweep(fail):
    clock = FakeClock()
    runner = FakeRunner(clock, fail_at=4, fail=fail)
    points = run_batch_sweep(runner, [1, 2, 4, 8], 8, SweepLimits(budget_s=1e6), now=clock)
    assert [p.status for p in points] == ["ok", "ok", "oom"]
    assert 8 not in runner.calls
    assert points[-1].to_sweep_point().status == "oom"
    report = analyze_sweep([p.to_sweep_point() for p in points])
    assert any("batch_size 4: oom" in w for w in report.warnings)
    assert points[-1].to_dict()["latency_s"] is None


def test_slow_point_times_out_and_ends_the_sweep():
    clock = FakeClock()
    runner = FakeRunner(clock, slow_at=4)
    points = run_batch_sweep(runner, [1, 2, 4, 8], 8, SweepLimits(budget_s=60.0), now=clock)
    assert [p.status for p in points] == ["ok", "ok", "timeout"]
    assert "raise --infer-sweep-budget-s" in points[-1].note
    assert 8 not in runner.calls


def test_point_budget_cuts_rounds_but_keeps_the_minimum():
    clock = FakeClock()
    points = run_batch_sweep(FakeRunner(clock), [1, 2], 8, SweepLimits(budget_s=0.5), now=clock)
    assert points[0].status == "ok"
    assert 3 <= len(points[0].round_s) < 368
    assert "point budget used" in points[0].note


def test_other_errors_propagate():
    clock = FakeClock()
    runner = FakeRunner(clock, fail_at=2, fail=RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_batch_sweep(runner, [1, 2], 8, SweepLimits(budget_s=1e6), now=clock)


def test_poisson_arrivals_are_seeded_and_have_the_right_rate():
    first = compute_poisson_arrivals(50.0, 4000, seed=7)
    assert first == compute_poisson_arrivals(50.0, 4000, seed=7)
    assert first != compute_poisson_arrivals(50.0, 4000, seed=8)
    assert len(first) / first[-1] == pytest.approx(50.0, rel=0.05)


def test_poisson_point_batches_what_has_arrived():
    # service 1 s per batch; arrivals at 0.5, 0.6, 0.7, 3.0
    point = run_poisson_point(lambda b: 1.0, [0.5, 0.6, 0.7, 3.0], max_batch=8,
                              new_tokens=4, rate_per_s=1.0)
    assert point.batch_sizes == [1, 2, 1]  # 0.5 alone; 0.6+0.7 at 1.5; 3.0 alone
    assert point.latency_s == pytest.approx([1.0, 1.9, 1.8, 1.0])
    assert point.makespan_s == pytest.approx(3.5)
    assert point.tokens_per_s == pytest.approx(16 / 3.5)


def test_poisson_sweep_records_oom_and_stops():
    def serve(batch: int) -> float:
        if batch > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return 0.01

    points = run_poisson_sweep(serve, [1.0, 10_000.0, 20_000.0], n_requests=20, max_batch=8,
                               new_tokens=4, seed=1, budget_s=1e6)
    assert [p.status for p in points] == ["ok", "oom"]

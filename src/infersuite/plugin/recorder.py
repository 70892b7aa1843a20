"""The ``infer_perf`` fixture's object: rounds scaled by the run's options, pedantic
benchmarks with GC off (and GPU energy read around them), raw samples handed to the run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from infersuite.measure.records import PerfRecord

if TYPE_CHECKING:
    from infersuite.plugin.perf import PerfState

T = TypeVar("T")


class PerfRecorder:
    """The `infer_perf` fixture: scales rounds, runs pedantic benchmarks with GC off and
    keeps each measured round's result, and takes the test's raw samples for the report."""

    def __init__(self, state: PerfState, request: pytest.FixtureRequest) -> None:
        self._state = state
        self._node = request.node
        self._benchmark: Any = None
        self._energy: dict[str, Any] | None = None

    def rounds(self, default: int) -> int:
        if self._state.rounds is None:
            return default
        from infersuite.plugin.perf import DEFAULT_LATENCY_ROUNDS, MIN_ROUNDS

        return max(MIN_ROUNDS, round(default * self._state.rounds / DEFAULT_LATENCY_ROUNDS))

    def warmup(self, default: int) -> int:
        return default if self._state.warmup is None else self._state.warmup

    def measure(self, benchmark: Any, fn: Callable[[], T], rounds: int,
                warmup_rounds: int, energy: tuple[str, int] | None = None) -> list[T]:
        """`benchmark.pedantic(fn, rounds, iterations=1, warmup_rounds)` with GC disabled;
        returns fn's results from the measured rounds only.

        `energy` = (device, tokens generated per call): the GPU energy of the whole
        pedantic run (every call, warm-up included, does the same work) is read from NVML
        around it, never inside a timed round, and goes into the record; where there is no
        counter the record says why."""
        from infersuite.measure.energy import EnergyMeter
        from infersuite.measure.timing import collect_after_warmup, gc_disabled

        self._benchmark = benchmark
        if getattr(benchmark, "disabled", False):
            rounds, warmup_rounds = 1, 0
        wrapped, results = collect_after_warmup(fn, warmup_rounds)
        meter = None if energy is None else EnergyMeter(self._state.energy_counter(energy[0]))
        with gc_disabled():
            if meter is not None:
                meter.start()
            benchmark.pedantic(wrapped, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
            if meter is not None and energy is not None:
                self._energy = meter.stop(energy[1] * (rounds + warmup_rounds))
        return results

    def record(self, metrics: Mapping[str, Sequence[float]], primary: str,
               group: str | None = None, extra: Mapping[str, Any] | None = None) -> PerfRecord:
        """Hand over raw samples (seconds); `primary` is the metric the gate compares."""
        if primary not in metrics:
            raise ValueError(f"primary metric {primary!r} is not among {sorted(metrics)}")
        extra = {**(extra or {}), **({"energy": self._energy} if self._energy else {})}
        record = PerfRecord(name=self._node.name, fullname=self._node.nodeid, primary=primary,
                            metrics={k: [float(v) for v in vals] for k, vals in metrics.items()},
                            group=group, extra=extra)
        self._state.records[record.fullname] = record
        if self._benchmark is not None:
            self._benchmark.extra_info.update(
                {k: v for k, v in record.extra.items() if isinstance(v, (int, float, str))})
            self._benchmark.extra_info["infersuite_primary"] = primary
        return record

"""Batch-size sweep driver: rounds per point within a time budget, OOM/timeout end the sweep.

A point times whole-batch generations of a fixed length: every request of the batch
finishes when the batch does, so each request's latency is its round's end-to-end time.
The b requests of one round are one observation, not b independent ones, so percentile
intervals are computed over rounds (the per-request distribution is the same: every
round weighs b). Rounds per point aim at enough for a p99 interval (368 for two-sided
95%) within the point's share of the remaining budget; points that get fewer are flagged.

The driver does not know about models: it calls a runner (``SweepRunner``), so tests can
hand it a fake that raises out-of-memory or runs slow.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from infersuite.stats.percentiles import compute_summary, min_samples_for_percentile
from infersuite.stats.sweep import SweepPoint

P99_SAMPLES = min_samples_for_percentile(99.0)  # 368: both ends of a 95% p99 interval


class SweepRunner(Protocol):
    def generate(self, batch: int) -> float:
        """Seconds for one fixed-length generation of ``batch`` requests (synchronized)."""
        ...

    def profile(self, batch: int) -> tuple[float, list[float]]:
        """(prefill seconds, seconds of each timed decode step) for ``batch`` requests."""
        ...


@dataclass
class PointResult:
    """One batch size: raw samples, summary, throughput and (later) efficiency."""

    batch_size: int
    status: str  # ok | oom | timeout | error
    new_tokens: int
    round_s: list[float] = field(default_factory=list)
    prefill_s: float | None = None
    decode_step_s: list[float] = field(default_factory=list)
    efficiency: dict[str, Any] = field(default_factory=dict)
    energy: dict[str, Any] | None = None  # GPU energy of the timed rounds (measure/energy.py)
    note: str = ""
    audio_s: float | None = None  # seconds of audio per request, for a speech sweep

    @property
    def latency_samples_s(self) -> list[float]:
        """Per-request E2E latency samples for statistics: one per round (the requests of
        a round share its time, so repeating it b times would fake independent samples)."""
        return list(self.round_s)

    @property
    def tokens_per_s(self) -> float | None:
        total = sum(self.round_s)
        return self.batch_size * self.new_tokens * len(self.round_s) / total if total else None

    @property
    def requests_per_s(self) -> float | None:
        total = sum(self.round_s)
        return self.batch_size * len(self.round_s) / total if total else None

    @property
    def audio_s_per_s(self) -> float | None:
        """Seconds of audio transcribed per second of wall time (a speech sweep's point)."""
        total = sum(self.round_s)
        if self.audio_s is None or not total:
            return None
        return self.batch_size * self.audio_s * len(self.round_s) / total

    @property
    def throughput(self) -> float | None:
        """What the knees weigh: audio seconds/s for speech, generated tokens/s otherwise."""
        return self.tokens_per_s if self.audio_s is None else self.audio_s_per_s

    def to_sweep_point(self) -> SweepPoint:
        """The knee library's view: throughput (``throughput``), latencies in seconds."""
        if self.status != "ok" or not self.round_s:
            return SweepPoint(self.batch_size, None, None, None, None, self.status)
        p = compute_summary(self.latency_samples_s, (50.0, 99.0)).percentiles
        return SweepPoint(self.batch_size, self.throughput, p[50.0].value, p[99.0].value,
                          p[99.0].upper, "ok")

    def to_dict(self) -> dict[str, Any]:
        summary = compute_summary(self.latency_samples_s, (50.0, 90.0, 99.0))
        return {
            "batch_size": self.batch_size,
            "status": self.status,
            "note": self.note,
            "new_tokens": self.new_tokens,
            "rounds": len(self.round_s),
            "round_s": self.round_s,
            "latency_s": summary.to_dict() if self.round_s else None,
            "tokens_per_s": self.tokens_per_s,
            "requests_per_s": self.requests_per_s,
            **({} if self.audio_s is None else {"audio_s": self.audio_s,
                                                "audio_s_per_s": self.audio_s_per_s}),
            "prefill_s": self.prefill_s,
            "decode_step_s": self.decode_step_s,
            "efficiency": self.efficiency,
            "energy": self.energy,
        }


def powers_of_two(max_batch: int) -> list[int]:
    """1, 2, 4, ... up to ``max_batch`` (included when it is a power of two)."""
    if max_batch < 1:
        raise ValueError(f"max_batch={max_batch}: must be >= 1")
    return [1 << i for i in range(int(math.log2(max_batch)) + 1)]


# What torch's CPU allocator says when malloc fails (a plain RuntimeError, no type of its own).
CPU_ALLOCATOR_FAILURE = "DefaultCPUAllocator: can't allocate memory"


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed, by its type: ``torch.OutOfMemoryError`` (the CUDA caching
    allocator; ``torch.cuda.OutOfMemoryError`` is the same class), MemoryError, or the CPU
    allocator's RuntimeError. Other errors whose text mentions memory (a CUDA error from a
    kernel, "illegal memory access") are not a point's limit: they propagate."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch
    except ImportError:
        return False
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and CPU_ALLOCATOR_FAILURE in str(exc)


def _release_memory() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class SweepLimits:
    budget_s: float
    # Untimed rounds at each batch size before its timed ones: a new shape's first run pays
    # for allocator growth, kernel selection (cuBLAS heuristics, autotuning) and, with
    # torch.compile, recompilation; none of that belongs to the point's latency.
    warmup_rounds: int = 1
    min_rounds: int = 3
    max_rounds: int = 400
    target_samples: int = P99_SAMPLES


def run_batch_sweep(runner: SweepRunner, batch_sizes: Sequence[int], new_tokens: int,
                    limits: SweepLimits, now: Callable[[], float] = time.perf_counter,
                    energy_counter: Any = None, audio_s: float | None = None
                    ) -> list[PointResult]:
    """Measure each batch size in order; the first non-ok point is recorded and ends it.
    With `energy_counter` (``open_energy_counter``'s answer) each point's timed rounds are
    metered too. `audio_s`: each request's seconds of audio, when the runner transcribes."""
    start = now()
    results: list[PointResult] = []
    for index, batch in enumerate(batch_sizes):
        remaining = limits.budget_s - (now() - start)
        share = remaining / (len(batch_sizes) - index)
        point = _measure_point(runner, batch, new_tokens, limits, share, remaining, now,
                               energy_counter)
        point.audio_s = audio_s
        results.append(point)
        if point.status != "ok":
            break
    return results


def _measure_point(runner: SweepRunner, batch: int, new_tokens: int, limits: SweepLimits,
                   share_s: float, remaining_s: float, now: Callable[[], float],
                   energy_counter: Any = None) -> PointResult:
    from infersuite.measure.energy import EnergyMeter

    point = PointResult(batch, "ok", new_tokens)
    wanted = min(limits.max_rounds, max(limits.min_rounds, limits.target_samples))
    point_start = now()
    try:
        if remaining_s <= 0:
            raise TimeoutError("the sweep budget was used up before this point started")
        for _ in range(limits.warmup_rounds):
            runner.generate(batch)
        point_start = now()  # the point's budget is for timed rounds
        meter = None if energy_counter is None else EnergyMeter(energy_counter)
        if meter is not None:
            meter.start()
        while len(point.round_s) < wanted:
            point.round_s.append(runner.generate(batch))
            spent = now() - point_start
            if spent > remaining_s and len(point.round_s) < limits.min_rounds:
                raise TimeoutError(
                    f"{len(point.round_s)} round(s) took {spent:.1f}s, over the "
                    f"{remaining_s:.1f}s left of the budget")
            if spent > share_s and len(point.round_s) >= limits.min_rounds:
                point.note = f"{len(point.round_s)}/{wanted} rounds: point budget used"
                break
        if meter is not None:
            point.energy = meter.stop(batch * new_tokens * len(point.round_s))
        point.prefill_s, point.decode_step_s = runner.profile(batch)
    except TimeoutError as exc:
        point.status, point.note = "timeout", str(exc) + "; raise --infer-sweep-budget-s"
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        _release_memory()
        point.status, point.note = "oom", f"{type(exc).__name__}: {str(exc)[:200]}"
    return point

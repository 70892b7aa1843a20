"""Concurrency sweep: Poisson arrivals served by a simple dynamic batching loop.

Not continuous batching. transformers 5.23 has ``model.generate_batch`` and
``ContinuousBatchingManager``, but on the CPU (paged attention, default cache sizing) a
4 x 8-token batch of the tiny model took ~6 s plus ~40 s of setup, so it cannot be swept
here. This driver is the stand-in: requests arrive at seeded exponential inter-arrival
times; when the server is idle it takes every queued request (up to ``max_batch``) and
runs one fixed-length batch generation whose duration is *measured* on the model.
Arrivals and queueing run on a virtual clock advanced by those measured service times (no
sleeping), so a rate point costs only its generations. Latency = finish - arrival.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from infersuite.measure.sweep import is_out_of_memory
from infersuite.stats.percentiles import compute_summary

DRIVER_NOTE = (
    "Poisson arrivals (seeded exponential gaps) served by a dynamic batching loop: when idle "
    "the server takes every queued request (up to the max batch) and runs one fixed-length "
    "batch generation, timed on the model; arrivals and queueing run on a virtual clock. "
    "Not transformers' continuous batching, which took ~6 s (+~40 s setup) for 4 x 8 tokens "
    "of the tiny model on this CPU (transformers 5.23)."
)


def compute_poisson_arrivals(rate_per_s: float, n: int, seed: int) -> list[float]:
    """Arrival times (s) of ``n`` requests: cumulative seeded Exp(rate) inter-arrival gaps."""
    if not rate_per_s > 0:
        raise ValueError(f"rate_per_s={rate_per_s!r}: must be > 0 requests/s")
    rng, t, times = random.Random(seed), 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate_per_s)
        times.append(t)
    return times


@dataclass
class RatePoint:
    """One arrival rate: per-request latencies and the batches the server formed."""

    rate_per_s: float
    new_tokens: int
    status: str = "ok"
    latency_s: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    makespan_s: float = 0.0
    note: str = ""

    @property
    def tokens_per_s(self) -> float | None:
        done = len(self.latency_s)
        return done * self.new_tokens / self.makespan_s if self.makespan_s > 0 else None

    @property
    def requests_per_s(self) -> float | None:
        return len(self.latency_s) / self.makespan_s if self.makespan_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        mean_batch = sum(self.batch_sizes) / len(self.batch_sizes) if self.batch_sizes else None
        return {
            "rate_per_s": self.rate_per_s,
            "status": self.status,
            "note": self.note,
            "requests": len(self.latency_s),
            "latency_s_samples": self.latency_s,
            "latency_s": compute_summary(self.latency_s, (50.0, 90.0, 99.0)).to_dict()
            if self.latency_s else None,
            "tokens_per_s": self.tokens_per_s,
            "requests_per_s": self.requests_per_s,
            "mean_batch_size": mean_batch,
            "batch_sizes": self.batch_sizes,
        }


def run_poisson_point(serve: Callable[[int], float], arrivals: Sequence[float],
                      max_batch: int, new_tokens: int, rate_per_s: float) -> RatePoint:
    """Serve ``arrivals`` with one batch in flight at a time; ``serve(b)`` returns seconds."""
    point = RatePoint(rate_per_s, new_tokens)
    now, head = 0.0, 0
    while head < len(arrivals):
        now = max(now, arrivals[head])
        tail = head
        while tail < len(arrivals) and arrivals[tail] <= now and tail - head < max_batch:
            tail += 1
        now += serve(tail - head)
        point.batch_sizes.append(tail - head)
        point.latency_s += [now - a for a in arrivals[head:tail]]
        head = tail
    point.makespan_s = now - arrivals[0] if arrivals else 0.0
    return point


def run_poisson_sweep(serve: Callable[[int], float], rates_per_s: Sequence[float],
                      n_requests: int, max_batch: int, new_tokens: int, seed: int,
                      budget_s: float,
                      now: Callable[[], float] = time.perf_counter) -> list[RatePoint]:
    """Each rate in order (same seed, so rates differ only in scale); out-of-memory or the
    budget running out is recorded on the point and ends the sweep."""
    start, points = now(), []
    for rate in rates_per_s:
        if now() - start > budget_s:
            points.append(RatePoint(rate, new_tokens, "timeout",
                                    note=f"sweep budget {budget_s:g}s used up before this rate"))
            break
        arrivals = compute_poisson_arrivals(rate, n_requests, seed)
        try:
            points.append(run_poisson_point(serve, arrivals, max_batch, new_tokens, rate))
        except (MemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            points.append(RatePoint(rate, new_tokens, "oom", note=str(exc)[:200]))
            break
    return points

"""Timing loops: warmup, GC disabled while timing, one raw sample per round."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def gc_disabled() -> Iterator[None]:
    """Collect once, then keep the cyclic GC off (restored to its prior state after)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_rounds(
    fn: Callable[[], object],
    rounds: int,
    warmup_rounds: int = 0,
    now_ns: Callable[[], int] = time.perf_counter_ns,
    sync: Callable[[], None] | None = None,
) -> list[float]:
    """Seconds per call of `fn` for `rounds` measured calls after `warmup_rounds` unmeasured.

    `sync` (e.g. a CUDA synchronize) runs at each boundary, outside nothing it measures.
    """
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: need at least 1 measured round")
    for _ in range(warmup_rounds):
        fn()
    samples: list[float] = []
    with gc_disabled():
        for _ in range(rounds):
            if sync is not None:
                sync()
            start = now_ns()
            fn()
            if sync is not None:
                sync()
            samples.append((now_ns() - start) / 1e9)
    return samples


def collect_after_warmup(
    fn: Callable[[], T], warmup_rounds: int
) -> tuple[Callable[[], T], list[T]]:
    """Wrap `fn` so its results from measured calls (after the first `warmup_rounds`) are kept.

    pytest-benchmark's pedantic mode calls the target for warmup rounds too; this drops them.
    """
    results: list[T] = []
    calls = [0]

    def wrapped() -> T:
        value = fn()
        calls[0] += 1
        if calls[0] > warmup_rounds:
            results.append(value)
        return value

    return wrapped, results


def time_interleaved(
    calls: Mapping[str, Callable[[], object]],
    rounds: int,
    warmup_rounds: int = 1,
    seed: int = 0,
    now_ns: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, list[float]]:
    """Seconds per call of each function over `rounds` rounds, each round calling every
    function once in an order drawn at random (seeded): the functions share the host's
    slow and fast spells, so round i of one pairs with round i of another. Warmup rounds
    go the same way, unmeasured."""
    import random

    if rounds < 2:
        raise ValueError(f"rounds={rounds}: paired comparisons need at least 2 rounds")
    rng, names = random.Random(seed), list(calls)
    for _ in range(warmup_rounds):
        for name in rng.sample(names, len(names)):
            calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    with gc_disabled():
        for _ in range(rounds):
            for name in rng.sample(names, len(names)):
                start = now_ns()
                calls[name]()
                samples[name].append((now_ns() - start) / 1e9)
    return samples

"""The sweep point record (one batch size or concurrency level) and its validation."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

STATUSES = ("ok", "oom", "timeout", "error")


@dataclass(frozen=True)
class SweepPoint:
    """One measured load level; non-ok points are reported but ignored by the math.

    Latencies and throughput may use any consistent units (the CLI uses seconds).
    """

    batch_size: int
    throughput: float | None
    latency_p50: float | None
    latency_p99: float | None
    latency_p99_upper: float | None = None
    status: str = "ok"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def ok_points(points: Iterable[SweepPoint]) -> list[SweepPoint]:
    """The status-"ok" points sorted by batch size; rejects duplicates and bad values."""
    selected = sorted((p for p in points if _check_point(p) == "ok"), key=lambda p: p.batch_size)
    for before, after in itertools.pairwise(selected):
        if before.batch_size == after.batch_size:
            raise ValueError(
                f"batch_size {after.batch_size} appears more than once with status ok; "
                "keep one measurement per batch size (or mark the others as error)"
            )
    return selected


def grid_distance(batch_sizes: list[int], first: int, second: int) -> int:
    """How many grid steps apart two batch sizes of the sorted grid are."""
    return abs(batch_sizes.index(first) - batch_sizes.index(second))


def _check_point(point: SweepPoint) -> str:
    if point.status not in STATUSES:
        raise ValueError(
            f"batch_size {point.batch_size}: status {point.status!r} is not one of "
            f"{', '.join(STATUSES)}"
        )
    if point.batch_size < 1:
        raise ValueError(f"batch_size {point.batch_size}: must be a positive integer")
    if point.status != "ok":
        return point.status
    for name in ("throughput", "latency_p50", "latency_p99", "latency_p99_upper"):
        value = getattr(point, name)
        if value is not None and not (math.isfinite(value) and value >= 0.0):
            raise ValueError(
                f"batch_size {point.batch_size}: {name}={value!r} must be a finite number >= 0"
            )
    return "ok"

"""Timelines of named marks on the host clock or as CUDA events, resolved once at the end.

A timeline never synchronizes between marks: on CUDA each mark is an event recorded on the
current stream, and the host waits once, in `resolve_s`, for the last one. On the host each
mark is `time.perf_counter_ns()` (or an injected clock, for tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol


class Timeline(Protocol):
    def mark(self, label: str) -> None: ...

    def labels(self) -> list[str]: ...

    def resolve_s(self) -> list[float]:
        """Seconds of every mark since the first one (waits for the device on CUDA)."""
        ...


class HostTimeline:
    """Marks from a nanosecond host clock (default `time.perf_counter_ns`)."""

    kind = "host:perf_counter_ns"

    def __init__(self, now_ns: Callable[[], int] = time.perf_counter_ns) -> None:
        self._now_ns = now_ns
        self._marks: list[tuple[str, int]] = []

    def mark(self, label: str) -> None:
        self._marks.append((label, self._now_ns()))

    def labels(self) -> list[str]:
        return [label for label, _ in self._marks]

    def resolve_s(self) -> list[float]:
        if not self._marks:
            return []
        start = self._marks[0][1]
        return [(stamp - start) / 1e9 for _, stamp in self._marks]


class CudaEventTimeline:
    """Marks as CUDA events (enable_timing) on the current stream of `device`."""

    kind = "cuda:events"

    def __init__(self, device: str) -> None:
        import torch

        self._torch = torch
        self._device = torch.device(device)
        self._events: list[tuple[str, Any]] = []

    def mark(self, label: str) -> None:
        event = self._torch.cuda.Event(enable_timing=True)
        event.record(self._torch.cuda.current_stream(self._device))
        self._events.append((label, event))

    def labels(self) -> list[str]:
        return [label for label, _ in self._events]

    def resolve_s(self) -> list[float]:
        if not self._events:
            return []
        self._events[-1][1].synchronize()
        start = self._events[0][1]
        return [start.elapsed_time(event) / 1e3 for _, event in self._events]


def is_cuda_device(device: str) -> bool:
    return str(device).startswith("cuda")


def synchronize(device: str) -> None:
    """Wait for queued work on a CUDA device (a measured boundary); no-op on the CPU."""
    if is_cuda_device(device):
        import torch

        torch.cuda.synchronize(torch.device(device))


def make_timeline(device: str, now_ns: Callable[[], int] | None = None) -> Timeline:
    """CUDA events on a CUDA device, else the host clock (`now_ns` overrides, for tests)."""
    if now_ns is not None:
        return HostTimeline(now_ns)
    if is_cuda_device(device):
        return CudaEventTimeline(device)
    return HostTimeline()


def timeline_kind(device: str) -> str:
    return CudaEventTimeline.kind if is_cuda_device(device) else HostTimeline.kind


def time_region(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    """(fn(), seconds) between two marks of a timeline after a synchronize: CUDA events on a
    GPU, the host clock elsewhere, the same boundaries as a request's timeline."""
    synchronize(device)
    timeline = make_timeline(device)
    timeline.mark("start")
    out = fn()
    timeline.mark("end")
    return out, timeline.resolve_s()[-1]

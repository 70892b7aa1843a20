"""The in-run reference workload: a fixed probe timed before every measured round.

A 256 x 256 float32 matmul and a 4 MiB device copy (about 0.45 ms on one core of a 2-core
AMD EPYC host): the compute and memory paths inference takes, on the same device and torch
threads as the benchmark. It runs untimed by the benchmark (pytest-benchmark's ``setup``
hook), so each round gets the host's speed at that moment. A cross-run comparison can then
divide every sample by its round's probe: whatever slowed both the probe and the workload
(a slower clock, a neighbour on the cores) cancels, and the gate may judge on the
normalized samples when they prove less noisy than the raw ones (baseline/gate.py).
"""

from __future__ import annotations

from collections.abc import Callable

PROBE_N = 256
PROBE_COPY_BYTES = 4 << 20


def make_probe(device: str) -> Callable[[], float]:
    """A callable that runs the probe once on `device` and returns its seconds."""
    import torch

    from infersuite.measure.clocks import time_region

    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(PROBE_N, PROBE_N, generator=gen).to(device)
    b = torch.randn(PROBE_N, PROBE_N, generator=gen).to(device)
    out = torch.empty_like(a)
    src = torch.ones(PROBE_COPY_BYTES // 4, device=device)
    dst = torch.empty_like(src)

    def work() -> None:
        torch.mm(a, b, out=out)
        dst.copy_(src)

    def run() -> float:
        with torch.inference_mode():
            return time_region(work, device)[1]

    return run

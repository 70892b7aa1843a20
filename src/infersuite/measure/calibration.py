"""In-run calibration of a device: GEMM FLOP/s and device-to-device copy bytes/s.

GEMM: ``c = a @ b`` with square n x n operands, FLOPs = 2·n³, in the dtype of the case
it calibrates (n=8192 on CUDA, 1024 on the CPU): MFU divides by the peak of the arithmetic
the model runs, and a GPU's float32 (TF32 or not), bf16 and fp16 peaks differ by up to
16x. Copy: ``dst.copy_(src)``, bytes = 2·numel·element size (read + write). Each is
warmed up, then timed per round (CUDA events on a GPU, perf_counter on the CPU); the figure
kept is the best round (a peak is what the hardware *can* do), the
median is kept alongside.

A calibration that raises is never skipped or left out: MBU and MFU divide by both peaks,
so ``run_calibration`` raises ``CalibrationError`` naming the calibration (GEMM or copy,
with its dtype and size), the device and the original error, and the test asking for the
calibration fails. CUDA out-of-memory is the one error retried (at half the sizes, down to
n=1024); after that it fails the same way.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from infersuite.stats.roofline import compute_copy_bytes, compute_gemm_flops, compute_rate

GEMM_N = {"cuda": 8192, "cpu": 1024}
GEMM_DTYPE = {"cuda": "bfloat16", "cpu": "float32"}
COPY_BYTES = {"cuda": 1 << 30, "cpu": 128 << 20}

T = TypeVar("T")


@dataclass(frozen=True)
class Calibration:
    """Measured peaks of one device; rates are from the best round, medians for spread."""

    device: str
    gemm_dtype: str
    gemm_n: int
    flops_per_s: float
    flops_per_s_median: float
    copy_bytes: int
    bytes_per_s: float
    bytes_per_s_median: float
    rounds: int
    timer: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CalibrationError(RuntimeError):
    """One calibration of a device raised; the message names it, the device and the error."""


def _kind(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def time_device_op(fn: Callable[[], Any], device: str, rounds: int, warmup: int) -> list[float]:
    """Seconds per call of ``fn``: CUDA events around each call on a GPU, else perf_counter."""
    import torch

    for _ in range(warmup):
        fn()
    if _kind(device) == "cuda":
        torch.cuda.synchronize(device)
        pairs = []
        for _ in range(rounds):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            pairs.append((start, end))
        torch.cuda.synchronize(device)
        return [s.elapsed_time(e) / 1e3 for s, e in pairs]
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def measure_gemm(device: str, n: int, dtype: str, rounds: int, warmup: int) -> list[float]:
    """Seconds per n x n x n matmul (halving n on CUDA out-of-memory is the caller's job)."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=getattr(torch, dtype))
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=getattr(torch, dtype))
    out = torch.empty_like(a)
    with torch.inference_mode():
        return time_device_op(lambda: torch.matmul(a, b, out=out), device, rounds, warmup)


def measure_copy(device: str, nbytes: int, rounds: int, warmup: int) -> tuple[int, list[float]]:
    """(numel, seconds per ``dst.copy_(src)``) for a float32 tensor of about ``nbytes``."""
    import torch

    numel = max(1, nbytes // 4)
    src = torch.ones(numel, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    return numel, time_device_op(lambda: dst.copy_(src), device, rounds, warmup)


def _gemm_rates(device: str, n: int, dtype: str, rounds: int,
                warmup: int) -> tuple[float, float]:
    """(best, median) FLOP/s of the n x n x n GEMM."""
    seconds = measure_gemm(device, n, dtype, rounds, warmup)
    flops = compute_gemm_flops(n, n, n)
    return compute_rate(flops, min(seconds)), compute_rate(flops, statistics.median(seconds))


def _copy_rates(device: str, nbytes: int, rounds: int, warmup: int) -> tuple[int, float, float]:
    """(bytes moved per copy, best, median) bytes/s of the device-to-device copy."""
    numel, seconds = measure_copy(device, nbytes, rounds, warmup)
    moved = compute_copy_bytes(numel, 4)
    return moved, compute_rate(moved, min(seconds)), compute_rate(moved, statistics.median(seconds))


def _calibrate(name: str, device: str, measure: Callable[..., T], *args: Any) -> T:
    """``measure(*args)``; any error it raises becomes a CalibrationError naming ``name``."""
    try:
        return measure(*args)
    except Exception as exc:
        raise CalibrationError(f"calibration {name} on {device} failed: "
                               f"{type(exc).__name__}: {exc}") from exc


def run_calibration(device: str, rounds: int = 5, warmup: int = 2,
                    gemm_n: int | None = None, copy_bytes: int | None = None,
                    dtype: str | None = None) -> Calibration:
    """GEMM FLOP/s (in `dtype`, default GEMM_DTYPE of the device kind) and copy bytes/s of
    ``device``; on CUDA out-of-memory the sizes halve.

    Raises CalibrationError when either calibration fails (see the module docstring)."""
    import torch

    kind = _kind(device)
    n = gemm_n or GEMM_N[kind]
    dtype = dtype or GEMM_DTYPE[kind]
    nbytes = copy_bytes or COPY_BYTES[kind]
    while True:
        try:
            flops_best, flops_median = _calibrate(
                f"GEMM ({dtype}, n={n})", device, _gemm_rates, device, n, dtype, rounds, warmup)
            moved, bytes_best, bytes_median = _calibrate(
                f"copy ({nbytes / 2**20:g} MiB)", device, _copy_rates, device, nbytes, rounds,
                warmup)
            break
        except CalibrationError as exc:
            if not isinstance(exc.__cause__, torch.cuda.OutOfMemoryError) or n <= 1024:
                raise
            torch.cuda.empty_cache()
            n, nbytes = n // 2, nbytes // 2
    return Calibration(
        device=device,
        gemm_dtype=dtype,
        gemm_n=n,
        flops_per_s=flops_best,
        flops_per_s_median=flops_median,
        copy_bytes=moved,
        bytes_per_s=bytes_best,
        bytes_per_s_median=bytes_median,
        rounds=rounds,
        timer="cuda:events" if kind == "cuda" else "host:perf_counter",
    )

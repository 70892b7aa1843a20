"""Memory probes: host RSS (current and peak), CUDA peaks, weight and KV-cache bytes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from infersuite.measure.clocks import is_cuda_device


def host_rss_bytes() -> int:
    """Resident set size of this process now."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def reset_host_peak() -> bool:
    """Start this process's peak RSS afresh (Linux: "5" to /proc/self/clear_refs resets
    VmHWM); False where that is not possible, and the peak then covers the process's life."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _read_vm_hwm() is not None


def _read_vm_hwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_host_rss_bytes() -> int | None:
    """Peak RSS since the last reset_host_peak (VmHWM), or over the process's life
    (getrusage) where there is no VmHWM; None where neither exists."""
    hwm = _read_vm_hwm()
    if hwm is not None:
        return hwm
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def reset_peaks(device: str) -> str:
    """Reset the host's and (on CUDA) the device's peak memory before a measurement, so
    the snapshot after it holds that measurement's peaks, not the whole run's. Returns the
    host peak's scope for the record: "measurement" or "process"."""
    if is_cuda_device(device):
        import torch

        torch.cuda.reset_peak_memory_stats(torch.device(device))
    return "measurement" if reset_host_peak() else "process"


def cuda_peaks(device: str) -> dict[str, int] | None:
    """Peak allocated/reserved bytes since the last reset; None off CUDA."""
    if not is_cuda_device(device):
        return None
    import torch

    dev = torch.device(device)
    return {
        "cuda_peak_allocated_bytes": int(torch.cuda.max_memory_allocated(dev)),
        "cuda_peak_reserved_bytes": int(torch.cuda.max_memory_reserved(dev)),
    }


def weight_bytes(model: Any) -> int:
    """Bytes held by parameters and buffers (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        key = tensor.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def kv_cache_bytes(cache: Any) -> int:
    """Bytes of the key/value tensors a transformers Cache holds now."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if tensor is not None and hasattr(tensor, "numel"):
                total += tensor.numel() * tensor.element_size()
    return total


def compute_memory_snapshot(model: Any, cache: Any | None, device: str) -> dict[str, int | None]:
    """What a perf record carries: weights, KV cache, host RSS (now and peak), CUDA peaks."""
    snapshot: dict[str, int | None] = {
        "weight_bytes": weight_bytes(model),
        "kv_cache_bytes": kv_cache_bytes(cache) if cache is not None else None,
        "host_rss_bytes": host_rss_bytes(),
        "peak_host_rss_bytes": peak_host_rss_bytes(),
    }
    snapshot.update(cuda_peaks(device) or {})
    return snapshot

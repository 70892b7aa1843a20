"""The device fingerprint: hardware and software a measurement depends on, and a stable slug.

The slug names the hardware only (CPU model and cores, or GPU name and memory), so a
baseline keeps matching across package upgrades; versions are carried alongside.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any


def read_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


# The x86-64 extensions that decide which int8/bf16 kernels a runtime dispatches to.
KERNEL_ISA_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
                    "amx_tile", "amx_int8", "amx_bf16")


def read_cpu_isa_flags(cpuinfo: str | None = None) -> list[str]:
    """Which of KERNEL_ISA_FLAGS this CPU reports (Linux /proc/cpuinfo; empty elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        if line.lower().startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in KERNEL_ISA_FLAGS if flag in present]
    return []


def count_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(cwd: Path | None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _gpu_info(device: str | None) -> dict[str, Any] | None:
    if device is None or not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    dev = torch.device(device)
    props = torch.cuda.get_device_properties(dev)
    info: dict[str, Any] = {
        "name": props.name,
        "memory_bytes": int(props.total_memory),
        "capability": f"{props.major}.{props.minor}",
        "cuda": torch.version.cuda,
        "driver": _nvidia_driver(),
    }
    return info


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.stdout.strip().splitlines()
    return first[0].strip() if out.returncode == 0 and first else None


def read_torch_settings() -> dict[str, Any] | None:
    """The process-wide torch switches that change GPU arithmetic or kernels: TF32 for
    float32 matmuls and convolutions, reduced-precision reductions in half GEMMs, and
    which scaled-dot-product-attention backends torch may pick (it picks among the enabled
    ones per call, by shape and dtype). None without torch."""
    try:
        import torch
    except ImportError:
        return None
    matmul, sdpa = torch.backends.cuda.matmul, torch.backends.cuda
    return {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "tf32_matmul": bool(matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "fp16_reduced_precision_reduction": bool(matmul.allow_fp16_reduced_precision_reduction),
        "bf16_reduced_precision_reduction": bool(matmul.allow_bf16_reduced_precision_reduction),
        "sdpa_backends_enabled": [name for name, enabled in (
            ("flash", sdpa.flash_sdp_enabled()),
            ("mem_efficient", sdpa.mem_efficient_sdp_enabled()),
            ("cudnn", sdpa.cudnn_sdp_enabled()), ("math", sdpa.math_sdp_enabled())) if enabled],
    }


def slugify(text: str) -> str:
    text = re.sub(r"\((r|tm)\)", "", text.lower())
    text = re.sub(r"\b(cpu|processor|\d+-core)\b", " ", text)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def compute_slug(cpu_model: str, cores: int, gpu: dict[str, Any] | None) -> str:
    """`nvidia-h100-80gb-hbm3` for a GPU (its name already says memory), else
    `cpu-amd-epyc-7b13-2c`."""
    if gpu is not None:
        name = slugify(gpu["name"])
        if not re.search(r"\d+gb", name):
            name = f"{name}-{round(gpu['memory_bytes'] / 2**30)}gb"
        return name
    return f"cpu-{slugify(cpu_model)}-{cores}c"


def compute_fingerprint(device: str | None = None, root: Path | None = None) -> dict[str, Any]:
    """Fingerprint of this host; `device` ("cuda:0") adds that GPU and selects its slug."""
    cpu_model = read_cpu_model()
    cores = count_cpus()
    gpu = _gpu_info(device)
    torch_version = _version("torch")
    return {
        "slug": compute_slug(cpu_model, cores, gpu),
        "cpu": {"model": cpu_model, "cores": cores, "machine": platform.machine(),
                "isa": read_cpu_isa_flags()},
        "gpu": gpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            "torch": torch_version,
            "transformers": _version("transformers"),
            "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
            "pytest-benchmark": _version("pytest-benchmark"),
            "infersuite": _version("infersuite"),
        },
        "torch_settings": read_torch_settings(),
        "git_commit": _git_commit(root),
    }

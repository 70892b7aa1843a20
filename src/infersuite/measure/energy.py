"""GPU energy of a measured run, from NVML's cumulative energy counter.

``nvmlDeviceGetTotalEnergyConsumption`` (nvidia-ml-py) counts millijoules since the driver
loaded (Volta and later). A run's energy is the difference of two readings around it, so
the figure is the whole board's energy while the run held it: idle power included, other
processes' work included if any shared the GPU. The counter advances in steps (tens of
milliseconds on recent boards): a window under ``SHORT_WINDOW_S`` is flagged.

Where there is no counter (a CPU case, nvidia-ml-py not installed, no driver, a GPU
without the counter), ``open_energy_counter`` returns the reason instead, and the records
say "not measured" with it: never a zero, never a guess.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SHORT_WINDOW_S = 1.0


@dataclass(frozen=True)
class EnergyCounter:
    """One GPU's NVML energy counter."""

    read_mj: Callable[[], int]
    source: str  # "nvml:<GPU name>"


def _nvml_handle(nvml: Any, device: str) -> Any:
    """The NVML handle of torch's `device`: by UUID where torch knows it (NVML's indices
    ignore CUDA_VISIBLE_DEVICES), else by index."""
    index = int(device.split(":")[1]) if ":" in device else 0
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(index).uuid)
    except Exception:  # no CUDA torch here, or a torch without the uuid property
        return nvml.nvmlDeviceGetHandleByIndex(index)
    return nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")


def open_energy_counter(device: str) -> EnergyCounter | str:
    """The energy counter of a CUDA `device`, or why there is none."""
    if not str(device).startswith("cuda"):
        return "energy is read from NVML, for GPUs only; this case runs on the CPU"
    try:
        import pynvml as nvml
    except ImportError:
        return "nvidia-ml-py is not installed (pip install nvidia-ml-py): no NVML energy counter"
    try:
        nvml.nvmlInit()
        handle = _nvml_handle(nvml, device)
        name = nvml.nvmlDeviceGetName(handle)
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # NotSupported before Volta
    except nvml.NVMLError as exc:
        return f"NVML has no energy counter for {device}: {exc}"
    name = name.decode() if isinstance(name, bytes) else str(name)
    return EnergyCounter(lambda: int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle)),
                         f"nvml:{name}")


class EnergyMeter:
    """Energy over one window: ``start()`` before the run, ``stop(tokens)`` after it."""

    def __init__(self, counter: EnergyCounter | str,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.counter, self.clock = counter, clock
        self._start: tuple[int, float] | None = None

    def start(self) -> None:
        if isinstance(self.counter, EnergyCounter):
            self._start = (self.counter.read_mj(), self.clock())

    def stop(self, tokens: int) -> dict[str, Any]:
        """What the record carries: joules, window, average watts and joules per generated
        token; or the reason it was not measured."""
        if not isinstance(self.counter, EnergyCounter):
            return {"status": "not measured", "reason": self.counter}
        if self._start is None:
            raise RuntimeError("EnergyMeter.stop() without start()")
        end_mj, end_s = self.counter.read_mj(), self.clock()
        start_mj, start_s = self._start
        joules, seconds = (end_mj - start_mj) / 1e3, end_s - start_s
        result: dict[str, Any] = {
            "status": "ok", "source": self.counter.source, "energy_j": joules,
            "window_s": seconds, "avg_power_w": joules / seconds if seconds > 0 else None,
            "tokens": tokens, "joules_per_token": joules / tokens if tokens else None}
        if seconds < SHORT_WINDOW_S:
            result["note"] = (f"window {seconds:.3f} s < {SHORT_WINDOW_S:g} s: the counter's "
                              "update steps are a large part of it")
        return result


def describe_energy(energy: dict[str, Any]) -> str:
    """One line for reports."""
    if energy.get("status") != "ok":
        return f"energy not measured: {energy.get('reason')}"
    per_token = energy.get("joules_per_token")
    text = (f"{energy['energy_j']:.3g} J over {energy['window_s']:.2f} s, "
            f"{energy['avg_power_w']:.0f} W average"
            + ("" if per_token is None else f", {per_token:.3g} J/token")
            + f" ({energy['source']})")
    return text + (f"; {energy['note']}" if energy.get("note") else "")

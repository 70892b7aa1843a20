"""GPU energy from NVML's counter: the arithmetic on a counter with known steps, every
reason there can be no counter, and where the figures land (report and baseline)."""

from __future__ import annotations

import sys
import types

import pytest

from infersuite.measure.energy import (
    EnergyCounter,
    EnergyMeter,
    describe_energy,
    open_energy_counter,
)


class FakeNvml(types.ModuleType):
    """pynvml's calls the suite makes, with a counter that gains 450 J per read."""

    class NVMLError(Exception):
        pass

    def __init__(self, supported: bool = True) -> None:
        super().__init__("pynvml")
        self.supported, self.mj = supported, 1_000_000

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"handle-{index}"

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return f"handle-{uuid}"

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H200"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise self.NVMLError("Not Supported")
        self.mj += 450_000
        return self.mj


def test_joules_watts_and_joules_per_token_from_two_readings(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    counter = open_energy_counter("cuda:0")
    assert isinstance(counter, EnergyCounter)
    assert counter.source == "nvml:NVIDIA H200"
    clock = iter([10.0, 13.0])
    meter = EnergyMeter(counter, clock=lambda: next(clock))
    meter.start()
    energy = meter.stop(tokens=900)
    assert energy == {"status": "ok", "source": "nvml:NVIDIA H200", "energy_j": 450.0,
                      "window_s": 3.0, "avg_power_w": 150.0, "tokens": 900,
                      "joules_per_token": 0.5}
    assert describe_energy(energy) == ("450 J over 3.00 s, 150 W average, 0.5 J/token "
                                       "(nvml:NVIDIA H200)")


def test_a_short_window_is_flagged(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    clock = iter([0.0, 0.2])
    meter = EnergyMeter(open_energy_counter("cuda:0"), clock=lambda: next(clock))
    meter.start()
    assert "window 0.200 s < 1 s" in meter.stop(tokens=10)["note"]


@pytest.mark.parametrize(("device", "nvml", "reason"), [
    ("cpu", FakeNvml(), "energy is read from NVML, for GPUs only; this case runs on the CPU"),
    ("cuda:0", None, "nvidia-ml-py is not installed (pip install nvidia-ml-py)"),
    ("cuda:0", FakeNvml(supported=False), "NVML has no energy counter for cuda:0: Not Supported"),
])
def test_no_counter_gives_the_reason_not_a_number(monkeypatch, device, nvml, reason):
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    counter = open_energy_counter(device)
    assert isinstance(counter, str)
    assert reason in counter
    meter = EnergyMeter(counter)
    meter.start()
    assert meter.stop(tokens=10) == {"status": "not measured", "reason": counter}


def test_energy_goes_into_the_report_and_the_baseline():
    from infersuite.baseline.store import merge_run
    from infersuite.measure.records import PerfRecord
    from infersuite.report.terminal import render_headlines

    ok = {"status": "ok", "source": "nvml:NVIDIA H200", "energy_j": 450.0, "window_s": 3.0,
          "avg_power_w": 150.0, "tokens": 900, "joules_per_token": 0.5}
    absent = {"status": "not measured", "reason": "this case runs on the CPU"}
    records = [PerfRecord(name="gpu", fullname="t::gpu", primary="e2e_s",
                          metrics={"e2e_s": [0.1, 0.2]}, extra={"energy": ok}),
               PerfRecord(name="cpu", fullname="t::cpu", primary="e2e_s",
                          metrics={"e2e_s": [0.1, 0.2]}, extra={"energy": absent})]
    baseline = merge_run(None, records, {"slug": "nvidia-h200-141gb", "git_commit": None})
    assert baseline["benchmarks"]["t::gpu"]["energy"] == ok
    assert baseline["benchmarks"]["t::gpu"]["runs"][-1]["joules_per_token"] == 0.5
    assert "energy" not in baseline["benchmarks"]["t::cpu"]
    report = {"benchmarks": [{"name": r.name, "extra": r.extra} for r in records]}
    assert render_headlines(report) == [
        "gpu: 450 J over 3.00 s, 150 W average, 0.5 J/token (nvml:NVIDIA H200)",
        "energy not measured: this case runs on the CPU (1 benchmarks)"]


def test_knee_points_carry_their_energy(monkeypatch):
    """A sweep point's timed rounds are metered (warm-up excluded): tokens are batch x new
    tokens x rounds, and the knee table shows mJ per token and watts."""
    from infersuite.measure.sweep import SweepLimits, run_batch_sweep
    from infersuite.report.knee_document import SWEEP_HEADERS, energy_reason, sweep_rows

    class Runner:
        def generate(self, batch):
            return 0.01

        def profile(self, batch):
            return 0.001, [0.001]

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    points = run_batch_sweep(Runner(), [4], 8, SweepLimits(budget_s=1e6, max_rounds=5),
                             energy_counter=open_energy_counter("cuda:0"))
    energy = points[0].energy
    assert (energy["energy_j"], energy["tokens"]) == (450.0, 4 * 8 * 5)
    sweep = {"points": [points[0].to_dict()]}
    cell = sweep_rows(sweep)[0][SWEEP_HEADERS.index("energy/token, power")]
    assert cell.startswith(f"{450.0 / 160 * 1e3:.3g} mJ, ")
    assert energy_reason(sweep) == []
    cpu = run_batch_sweep(Runner(), [4], 8, SweepLimits(budget_s=1e6, max_rounds=5),
                          energy_counter=open_energy_counter("cpu"))
    assert energy_reason({"points": [cpu[0].to_dict()]}) == [
        "energy not measured: energy is read from NVML, for GPUs only; this case runs on "
        "the CPU"]

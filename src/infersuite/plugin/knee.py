"""Knee sweeps in pytest: --infer-sweep-*/--infer-slo-* options, the recorder fixture, and
knee.json / knee.md / plots written at session end."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from infersuite.plugin.options import (
    get_settings,
    is_xdist_worker,
    parse_positive_float,
    parse_positive_int,
)

if TYPE_CHECKING:
    from infersuite.measure.calibration import Calibration
    from infersuite.measure.sweep import PointResult
    from infersuite.measure.sweep_hf import ModelFacts
    from infersuite.stats.knee import KneeReport

# A GPU's decode stays memory-bound far past 256 rows for small models (MBU of a few % at
# batch 1 for a 270M model): the sweep goes on until the knee or an OOM ends it.
DEFAULT_MAX_BATCH = {"cpu": 64, "cuda": 4096}
DEFAULT_BUDGET_S = {"cpu": 60.0, "cuda": 240.0}


def _add_sweep_options(group: pytest.OptionGroup) -> None:
    group.addoption("--infer-sweep-max-batch", type=parse_positive_int, metavar="N",
                    help="largest batch size of the knee sweep (powers of two from 1; "
                         "default 64 on CPU, 4096 on CUDA); an OOM ends the sweep earlier")
    group.addoption("--infer-sweep-budget-s", type=parse_positive_float, metavar="SECONDS",
                    help="time budget per sweep (model x dtype); default 60 on CPU, 240 on CUDA")


def _add_slo_options(group: pytest.OptionGroup) -> None:
    group.addoption("--infer-slo-ms", type=parse_positive_float, metavar="MS",
                    help="p99 latency SLO for the SLO knee (default: --infer-slo-factor x "
                         "p99 at the smallest batch)")
    group.addoption("--infer-slo-factor", type=parse_positive_float, default=2.0, metavar="K",
                    help="default SLO = K x p99 latency at the smallest batch (default 2.0)")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infersuite", "infersuite: inference conformance and benchmarks")
    _add_sweep_options(group)
    _add_slo_options(group)


def _sweep_id(context: dict[str, str]) -> str:
    """model-dtype-device, and the engine where it is not the eager default (hf)."""
    engine = context.get("engine", "hf")
    return "-".join([context["model"], context["dtype"], context["device"],
                     *([] if engine == "hf" else [engine])])


def _device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def describe_device(device: str) -> str:
    """A human device name: the GPU's name on CUDA, the CPU model and core count otherwise."""
    if _device_kind(device) == "cuda":
        import torch

        return str(torch.cuda.get_device_name(device))
    from infersuite.baseline.fingerprint import count_cpus, read_cpu_model

    return f"{read_cpu_model()} ({count_cpus()} cores)"


@dataclass
class KneeRecorder:
    """Session-wide collector the sweep tests hand their results to."""

    max_batch: int | None
    budget_s: float | None
    slo_ms: float | None
    slo_factor: float
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    concurrency: list[dict[str, Any]] = field(default_factory=list)
    calibrations: dict[str, Calibration] = field(default_factory=dict)
    received_calibrations: dict[str, dict[str, Any]] = field(default_factory=dict)  # xdist
    written: list[Path] = field(default_factory=list)
    plot_note: str = ""

    def max_batch_for(self, device: str) -> int:
        return self.max_batch or DEFAULT_MAX_BATCH[_device_kind(device)]

    def budget_for(self, device: str) -> float:
        return self.budget_s or DEFAULT_BUDGET_S[_device_kind(device)]

    def calibration(self, device: str, dtype: str) -> Calibration:
        """The device's GEMM (in the case's dtype) and copy calibration, measured once per
        session and dtype: MFU is against the peak of the arithmetic the model runs."""
        key = f"{device}/{dtype}"
        if key not in self.calibrations:
            from infersuite.measure.calibration import run_calibration

            self.calibrations[key] = run_calibration(device, dtype=dtype)
        return self.calibrations[key]

    def calibration_dicts(self) -> dict[str, dict[str, Any]]:
        return {**self.received_calibrations,
                **{d: c.to_dict() for d, c in self.calibrations.items()}}

    def add_sweep(self, context: dict[str, str], points: list[PointResult], facts: ModelFacts,
                  prompt_tokens: int) -> KneeReport:
        """Add efficiency to each point, analyze the knees, keep everything for knee.json."""
        from infersuite.measure.sweep_hf import compute_point_efficiency

        cal = self.calibration(context["device"], context["dtype"])
        for point in points:
            point.efficiency = compute_point_efficiency(point, facts, cal, prompt_tokens)
        return self._add(context, points, {
            "workload": "text", "prompt_tokens": prompt_tokens,
            "throughput_unit": "generated tokens/s", "calibration": cal.to_dict(),
            "model_facts": facts.to_dict()})

    def add_speech_sweep(self, context: dict[str, str], points: list[PointResult],
                         clip_s: float) -> KneeReport:
        """A speech engine's sweep: each request a `clip_s`-second clip; throughput in audio
        seconds per second (no roofline efficiency: the knees need none)."""
        return self._add(context, points, {
            "workload": "speech", "clip_s": clip_s, "throughput_unit": "audio seconds/s"})

    def _add(self, context: dict[str, str], points: list[PointResult],
             workload: dict[str, Any]) -> KneeReport:
        from infersuite.stats.knee import analyze_sweep

        slo_s = None if self.slo_ms is None else self.slo_ms / 1e3
        report = analyze_sweep([p.to_sweep_point() for p in points], slo=slo_s,
                               slo_factor=self.slo_factor)
        self.sweeps.append({
            **context, "id": _sweep_id(context),
            "device_name": describe_device(context["device"]), **workload,
            "new_tokens": points[0].new_tokens if points else None, "latency_unit": "s",
            "points": [p.to_dict() for p in points], "knee": report.to_dict()})
        return report

    def add_concurrency(self, context: dict[str, str], driver: str, points: list[Any]) -> None:
        self.concurrency.append({
            **context, "id": _sweep_id(context),
            "device_name": describe_device(context["device"]), "driver": driver,
            "points": [p.to_dict() for p in points]})

    def build_document(self, config: pytest.Config) -> dict[str, Any]:
        from infersuite.report.knee_document import SCHEMA

        try:
            from infersuite.baseline.fingerprint import compute_fingerprint

            devices = {s["device"] for s in self.sweeps}
            gpu = next((d for d in devices if d.startswith("cuda")), None)
            fingerprint: dict[str, Any] | None = compute_fingerprint(gpu, config.rootpath)
        except ImportError:
            fingerprint = None
        return {
            "schema": SCHEMA,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": fingerprint,
            "settings": {"max_batch": self.max_batch, "budget_s": self.budget_s,
                         "slo_ms": self.slo_ms, "slo_factor": self.slo_factor},
            "calibrations": self.calibration_dicts(),
            "sweeps": self.sweeps,
            "concurrency": self.concurrency,
        }


knee_key = pytest.StashKey[KneeRecorder]()


def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.markers:
        return
    config.stash[knee_key] = KneeRecorder(
        max_batch=config.getoption("infer_sweep_max_batch"),
        budget_s=config.getoption("infer_sweep_budget_s"),
        slo_ms=config.getoption("infer_slo_ms"),
        slo_factor=config.getoption("infer_slo_factor"),
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if knee_key in config.stash:
        del config.stash[knee_key]


@pytest.fixture(scope="session")
def knee_recorder(pytestconfig: pytest.Config) -> KneeRecorder:
    """Hand sweep results here; knee.json/knee.md/plots are written at session end."""
    return pytestconfig.stash[knee_key]


def export_state(config: pytest.Config) -> dict[str, Any]:
    """This process's sweeps and calibrations, for the xdist controller."""
    recorder = config.stash.get(knee_key, None)
    if recorder is None or not (recorder.sweeps or recorder.concurrency):
        return {}
    return {"sweeps": recorder.sweeps, "concurrency": recorder.concurrency,
            "calibrations": recorder.calibration_dicts()}


def merge_state(config: pytest.Config, data: dict[str, Any]) -> None:
    recorder = config.stash[knee_key]
    recorder.sweeps += data.get("sweeps", [])
    recorder.concurrency += data.get("concurrency", [])
    recorder.received_calibrations.update(data.get("calibrations", {}))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    recorder = session.config.stash.get(knee_key, None)
    if recorder is None or not (recorder.sweeps or recorder.concurrency):
        return
    if is_xdist_worker(session.config):
        return
    from infersuite.report.knee_document import save_knee_report
    from infersuite.report.knee_plots import PLOT_HINT

    doc = recorder.build_document(session.config)
    report_dir = get_settings(session.config).report_dir
    recorder.written = save_knee_report(report_dir, doc)
    has_png = any(p.suffix == ".png" for p in recorder.written)
    recorder.plot_note = "" if has_png else PLOT_HINT


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    recorder = config.stash.get(knee_key, None)
    if recorder is None or not recorder.written:
        return
    import json

    from infersuite.report.knee_document import render_knee_terminal

    doc = json.loads(recorder.written[0].read_text())
    terminalreporter.section("infersuite knee")
    for line in render_knee_terminal(doc).splitlines():
        terminalreporter.write_line(line)
    for path in recorder.written:
        terminalreporter.write_line(f"knee report: {path}")
    if recorder.plot_note:
        terminalreporter.write_line(recorder.plot_note)

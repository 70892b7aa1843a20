"""Perf plugin: --infer-rounds/baseline options, the `infer_perf` fixture, percentile
reports, pytest-benchmark hooks and the regression gate that fails the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from infersuite.measure.records import PerfRecord
from infersuite.plugin.options import (
    get_settings,
    is_xdist_worker,
    parse_fraction,
    parse_non_negative_int,
    parse_positive_int,
    probe_cuda,
)

if TYPE_CHECKING:
    from infersuite.plugin.recorder import PerfRecorder

DEFAULT_LATENCY_ROUNDS = 80  # single-request latency; other benchmarks scale with it
MIN_ROUNDS = 3


def _add_measure_options(group: pytest.OptionGroup) -> None:
    group.addoption("--infer-rounds", type=parse_positive_int, metavar="N",
                    help=f"measured rounds of the single-request latency benchmarks (default "
                         f"{DEFAULT_LATENCY_ROUNDS}); other perf benchmarks scale theirs by "
                         f"N/{DEFAULT_LATENCY_ROUNDS}. p99 needs >= 368 samples for an interval")
    group.addoption("--infer-warmup", type=parse_non_negative_int, metavar="N",
                    help="unmeasured warmup rounds per benchmark (default: per benchmark)")
    group.addoption("--infer-cpu-threads", type=parse_non_negative_int, default=1, metavar="N",
                    help="torch intra-op threads during perf tests (default 1: one request "
                         "stream, stable on shared hosts; 0 keeps torch's default)")


def _add_baseline_options(group: pytest.OptionGroup) -> None:
    group.addoption("--infer-baseline", metavar="PATH",
                    help="compare this run to a baseline file; regressions fail the run")
    group.addoption("--infer-save-baseline", metavar="PATH",
                    help="write this run to a baseline file (appended to its run history)")
    group.addoption("--infer-regression-threshold", type=parse_fraction, default=0.05,
                    metavar="FRACTION", help="smallest median slowdown that fails the gate "
                    "(default 0.05; never below the baseline's recorded between-run spread)")
    group.addoption("--infer-baseline-any-device", action="store_true", default=False,
                    help="use a baseline recorded on a different device fingerprint")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infersuite")
    _add_measure_options(group)
    _add_baseline_options(group)


@dataclass
class PerfState:
    """Everything one run accumulates; lives in config.stash."""

    rounds: int | None
    warmup: int | None
    threshold: float
    cpu_threads: int = 1
    baseline_path: Path | None = None
    baseline: dict[str, Any] | None = None
    save_path: Path | None = None
    save_existing: dict[str, Any] | None = None
    fingerprint: dict[str, Any] | None = None
    # Which device the fingerprint describes; asked only when a fingerprint is needed,
    # because answering it may import torch to probe CUDA.
    fingerprint_device: Callable[[], str | None] = lambda: None
    root: Path | None = None
    # The devices of the selected perf items (set after collection): a `-m "not gpu"` run on
    # a GPU host measures the CPU only, and is fingerprinted as the CPU.
    measured_devices: frozenset[str] | None = None
    energy_counters: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    records: dict[str, PerfRecord] = field(default_factory=dict)
    benchmark_rounds: dict[str, PerfRecord] = field(default_factory=dict)  # plain benchmarks
    report: dict[str, Any] | None = None
    written: list[str] = field(default_factory=list)
    regressions: int = 0
    inconclusive: int = 0
    nothing_gated: bool = False  # a baseline that shares no benchmark with the run

    def probe(self, device: str) -> Any:
        """The reference probe on `device` (measure/probe.py), built once per run."""
        if device not in self.probes:
            from infersuite.measure.probe import make_probe

            self.probes[device] = make_probe(device)
        return self.probes[device]

    def energy_counter(self, device: str) -> Any:
        """The device's NVML energy counter (or why there is none), opened once per run."""
        if device not in self.energy_counters:
            from infersuite.measure.energy import open_energy_counter

            self.energy_counters[device] = open_energy_counter(device)
        return self.energy_counters[device]

    def get_fingerprint(self) -> dict[str, Any]:
        if self.fingerprint is None:
            from infersuite.baseline.fingerprint import compute_fingerprint

            self.fingerprint = compute_fingerprint(self.fingerprint_device(), self.root)
        return self.fingerprint


perf_state_key = pytest.StashKey[PerfState]()


def _fingerprint_device(config: pytest.Config, state: PerfState) -> str | None:
    """The CUDA device the run measures, or None when it measures the CPU only."""
    settings = get_settings(config)
    if settings.device == "cpu" or not probe_cuda(config)[0]:
        return None
    if state.measured_devices is not None:
        cuda = sorted(d for d in state.measured_devices if d.startswith("cuda"))
        return cuda[0] if cuda else None
    return "cuda" if settings.device == "auto" else settings.device


def _load_baselines(state: PerfState) -> None:
    if state.baseline_path is None and state.save_path is None:
        return
    from infersuite.baseline.store import BaselineError, load_baseline

    try:
        if state.baseline_path is not None:
            state.baseline = load_baseline(state.baseline_path)
        if state.save_path is not None and state.save_path.exists():
            state.save_existing = load_baseline(state.save_path)
    except BaselineError as exc:
        raise pytest.UsageError(str(exc)) from None


def _check_baseline_devices(state: PerfState) -> None:
    """A baseline of another device is a usage error (checked once the selection, and so
    the measured device, is known)."""
    from infersuite.baseline.store import BaselineError, check_same_device

    try:
        for path, data in ((state.baseline_path, state.baseline),
                           (state.save_path, state.save_existing)):
            if path is not None and data is not None:
                check_same_device(path, data, state.get_fingerprint())
    except BaselineError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Runs after -m/-k deselection: note which devices the selected perf items measure."""
    state = config.stash.get(perf_state_key, None)
    if state is None:
        return
    devices = set()
    for item in items:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("infer_case") if callspec is not None else None
        if case is not None and item.get_closest_marker("perf") is not None:
            devices.add(case.device)
    state.measured_devices = frozenset(devices)
    if not config.getoption("infer_baseline_any_device"):
        _check_baseline_devices(state)


def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.markers:
        return
    baseline = config.getoption("infer_baseline")
    save = config.getoption("infer_save_baseline")
    state = PerfState(
        rounds=config.getoption("infer_rounds"),
        warmup=config.getoption("infer_warmup"),
        threshold=config.getoption("infer_regression_threshold"),
        cpu_threads=config.getoption("infer_cpu_threads"),
        baseline_path=Path(baseline) if baseline else None,
        save_path=Path(save) if save else None,
        root=config.rootpath,
    )
    state.fingerprint_device = lambda: _fingerprint_device(config, state)
    _load_baselines(state)
    config.stash[perf_state_key] = state


def pytest_unconfigure(config: pytest.Config) -> None:
    if perf_state_key in config.stash:
        del config.stash[perf_state_key]


@pytest.fixture
def infer_perf(request: pytest.FixtureRequest) -> PerfRecorder:
    """Runs pedantic benchmarks and records their raw TTFT/ITL/TPOT/stage samples."""
    from infersuite.plugin.recorder import PerfRecorder

    return PerfRecorder(request.config.stash[perf_state_key], request)


@pytest.fixture(autouse=True)
def _infer_perf_threads(request: pytest.FixtureRequest) -> Iterator[None]:
    """Pin torch's intra-op threads for perf tests (restored after)."""
    state = request.config.stash.get(perf_state_key, None)
    if state is None or not state.cpu_threads or request.node.get_closest_marker("perf") is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(state.cpu_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Keep the round times of a plain `benchmark` test (one that never called
    `infer_perf.record`), read from its fixture once the test has run."""
    try:
        return (yield)
    finally:
        _keep_benchmark_rounds(item)


def _keep_benchmark_rounds(item: pytest.Item) -> None:
    state = item.config.stash.get(perf_state_key, None)
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    metadata = getattr(fixture, "stats", None)
    if state is None or metadata is None or getattr(fixture, "has_error", True):
        return
    rounds = list(metadata.stats.data)
    if rounds:
        state.benchmark_rounds[item.nodeid] = PerfRecord(
            name=metadata.name, fullname=item.nodeid, primary="round_s",
            metrics={"round_s": rounds}, group=metadata.group, source="pytest-benchmark")


def collect_records(config: pytest.Config, state: PerfState) -> list[PerfRecord]:
    """The test-recorded samples, plus round times of plain pytest-benchmark benchmarks."""
    return list({**state.benchmark_rounds, **state.records}.values())


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    state = config.stash.get(perf_state_key, None)
    if state is not None:
        fingerprint = state.get_fingerprint()
        machine_info["infersuite"] = fingerprint
        machine_info["gpu"] = fingerprint.get("gpu")


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list,
                                 output_json: dict) -> None:
    from infersuite.stats.percentiles import compute_summary

    state = config.stash.get(perf_state_key, None)
    by_fullname = {b.fullname: b for b in benchmarks}
    for entry in output_json.get("benchmarks", []):
        bench = by_fullname.get(entry.get("fullname"))
        if bench is not None and bench.stats.data:
            summary = compute_summary(list(bench.stats.data)).to_dict()
            entry["stats"]["percentiles"] = summary["percentiles"]
        record = state.records.get(entry.get("fullname")) if state else None
        if record is not None:
            entry["infersuite"] = {
                metric: compute_summary(vals).to_dict()
                for metric, vals in record.metrics.items() if len(vals) > 0}


def _run_gate(state: PerfState, records: list[PerfRecord], floors: Any = None) -> Any:
    from infersuite.baseline.gate import Probed, compute_gate
    from infersuite.baseline.store import baseline_probes, baseline_run_medians, baseline_samples

    assert state.baseline is not None
    current = {r.fullname: (r.name, r.primary, r.primary_samples())
               for r in records if r.primary_samples()}
    medians = {key: baseline_run_medians(state.baseline, key) for key in current}
    probed = {}
    for record in records:
        stored = baseline_probes(state.baseline, record.fullname)
        probes = record.metrics.get("probe_s", [])
        if stored is not None and probes and len(probes) == len(record.primary_samples()):
            probed[record.fullname] = Probed(probes, stored[1], stored[2])
    return compute_gate(baseline_samples(state.baseline), current, medians, state.threshold,
                        probed, floors)


def _settings_summary(config: pytest.Config, state: PerfState) -> dict[str, Any]:
    return {"rounds": state.rounds, "default_latency_rounds": DEFAULT_LATENCY_ROUNDS,
            "warmup": state.warmup, "regression_threshold": state.threshold,
            "cpu_threads": state.cpu_threads or "torch default",
            "device": config.getoption("infer_device"),
            "baseline": str(state.baseline_path) if state.baseline_path else None,
            "planted_slowdown": config.getoption("infer_plant_slowdown") or None}


def _finish_run(config: pytest.Config, state: PerfState, records: list[PerfRecord],
                tests_passed: bool = True) -> None:
    from infersuite.baseline.store import merge_run, save_baseline
    from infersuite.report.document import build_report, save_report
    from infersuite.report.markdown import render_markdown

    gate = _run_gate(state, records) if state.baseline is not None else None
    if gate is not None and tests_passed:  # else the run fails anyway: no re-measurement
        from infersuite.plugin.rerun import confirm_by_rerun

        gate, said = confirm_by_rerun(config, gate, lambda recs, fl: _run_gate(state, recs, fl))
        state.written += [said] if said else []
    state.regressions = len(gate.regressions) if gate else 0
    state.inconclusive = len(gate.inconclusive) if gate else 0
    state.nothing_gated = gate is not None and all(r.status == "new" for r in gate.rows)
    state.report = build_report(
        records, state.get_fingerprint(), _settings_summary(config, state), gate,
        str(state.baseline_path) if state.baseline_path else None)
    paths = save_report(get_settings(config).report_dir, state.report,
                        render_markdown(state.report))
    state.written += [f"report: {p}" for p in paths]
    if state.save_path is not None:
        data = merge_run(state.save_existing, records, state.get_fingerprint())
        save_baseline(state.save_path, data)
        state.written.append(f"baseline saved: {state.save_path} "
                             f"({len(data['benchmarks'])} benchmarks)")


def export_state(config: pytest.Config) -> list[dict[str, Any]]:
    """This process's records, for the xdist controller."""
    state = config.stash.get(perf_state_key, None)
    return [] if state is None else [asdict(r) for r in collect_records(config, state)]


def merge_state(config: pytest.Config, records: list[dict[str, Any]]) -> None:
    state = config.stash[perf_state_key]
    for data in records:
        record = PerfRecord(**data)
        state.records[record.fullname] = record


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(perf_state_key, None)
    if state is None or is_xdist_worker(session.config):
        return
    records = collect_records(session.config, state)
    if not records:
        return
    _finish_run(session.config, state, records, session.exitstatus == pytest.ExitCode.OK)
    if session.exitstatus != pytest.ExitCode.OK:
        return  # a failed test wins: its run's timings are not to be trusted
    if state.nothing_gated:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif state.regressions or state.inconclusive:
        from infersuite.baseline.gate import EXIT_INCONCLUSIVE, EXIT_REGRESSION

        session.exitstatus = EXIT_REGRESSION if state.regressions else EXIT_INCONCLUSIVE


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(perf_state_key, None)
    if state is None or state.report is None:
        return
    from infersuite.report.terminal import render_terminal_report

    terminalreporter.section("infersuite perf")
    for line in render_terminal_report(state.report).splitlines():
        terminalreporter.write_line(line)
    for line in state.written:
        terminalreporter.write_line(line)
    if state.regressions:
        terminalreporter.write_line(
            f"FAILED: {state.regressions} performance regression(s) against "
            f"{state.baseline_path}; the run exits 10", red=True, bold=True)
    elif state.inconclusive:
        terminalreporter.write_line(
            f"INCONCLUSIVE: {state.inconclusive} benchmark(s) against {state.baseline_path}: "
            "this host's noise hides the threshold (see the gate rows); the run exits 11",
            yellow=True, bold=True)
    if state.nothing_gated:
        terminalreporter.write_line(
            f"FAILED: {state.baseline_path} shares no benchmark with this run, so nothing "
            "was gated (its ids differ: a baseline saved before case ids named the engine, "
            "'...-cpu-hf', needs re-recording with --infer-save-baseline); the run exits "
            "non-zero", red=True, bold=True)

"""Read the gated samples of a run from a report.json, a baseline file or a pytest-benchmark
JSON (`--benchmark-json`, which carries raw round times)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infersuite.baseline.store import BASELINE_SCHEMA, BaselineError, parse_baseline
from infersuite.documents import parse_json_object, read_text
from infersuite.report.document import REPORT_SCHEMA, ReportError, parse_report


@dataclass
class RunSamples:
    """One file's benchmarks: key (fullname) -> display name, metric and raw samples."""

    path: Path
    kind: str  # report | baseline | pytest-benchmark
    slug: str | None
    names: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    run_medians: dict[str, list[float]] = field(default_factory=dict)


def _from_report(path: Path, data: dict[str, Any]) -> RunSamples:
    run = RunSamples(path, "report", (data.get("fingerprint") or {}).get("slug"))
    for bench in data["benchmarks"]:
        metric = bench.get("primary")
        samples = (bench.get("metrics") or {}).get(metric, {}).get("samples") or []
        key = bench.get("fullname") or bench.get("name")
        run.names[key], run.metrics[key] = bench.get("name", key), metric
        run.samples[key] = [float(v) for v in samples if v is not None]
    return run


def _from_baseline(path: Path, data: dict[str, Any]) -> RunSamples:
    run = RunSamples(path, "baseline", data["fingerprint"]["slug"])
    for key, entry in data["benchmarks"].items():
        run.names[key], run.metrics[key] = entry.get("name", key), entry.get("metric", "?")
        run.samples[key] = [float(v) for v in entry["samples"]]
        run.run_medians[key] = [float(r["median"]) for r in entry["runs"]]
    return run


def _from_pytest_benchmark(path: Path, data: dict[str, Any]) -> RunSamples:
    machine = data.get("machine_info") or {}
    run = RunSamples(path, "pytest-benchmark", (machine.get("infersuite") or {}).get("slug"))
    for bench in data["benchmarks"]:
        samples = (bench.get("stats") or {}).get("data")
        if not samples:
            raise ReportError(f"{path}: benchmark {bench.get('name')!r} has no raw data; "
                              "write it with --benchmark-json (or --benchmark-save-data)")
        key = bench.get("fullname") or bench.get("name")
        run.names[key], run.metrics[key] = bench.get("name", key), "round_s"
        run.samples[key] = [float(v) for v in samples]
    return run


def load_run_samples(path: Path) -> RunSamples:
    """Any of the three formats; ReportError names the path and the problem."""
    path = Path(path)
    text = read_text(path, lambda problem: ReportError(f"{path}: {problem}"))
    data = parse_json_object(text, lambda problem: ReportError(f"{path}: {problem}"))
    schema = data.get("schema")
    try:
        if schema == REPORT_SCHEMA:
            return _from_report(path, parse_report(path, text))
        if schema == BASELINE_SCHEMA:
            return _from_baseline(path, parse_baseline(path, text))
    except BaselineError as exc:
        raise ReportError(str(exc)) from None
    if isinstance(data.get("benchmarks"), list) and "machine_info" in data:
        return _from_pytest_benchmark(path, data)
    raise ReportError(f"{path}: schema is {schema!r}; this reads an infersuite report "
                      f"({REPORT_SCHEMA}), a baseline ({BASELINE_SCHEMA}) or "
                      "pytest-benchmark JSON")

"""The per-engine summary: outcomes of every engine case, its agreement with the reference
and its request latency, written as engines.json / engines.md and shown after the run
(when the run compares two or more engines)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from infersuite.plugin.options import Case, get_settings, is_xdist_worker

AGREEMENT_PROPERTY = "max_abs_logprob_diff"  # recorded by test_reference.py
# Set at collection on every engine case; they travel with each report, so the process
# that reports (the xdist controller, or the only process) sees them.
CASE_PROPERTY, ENGINE_PROPERTY, REFERENCE_PROPERTY = (
    "infersuite_case", "infersuite_engine", "infersuite_reference")


def _case_of(item: pytest.Item) -> Case | None:
    case = getattr(getattr(item, "callspec", None), "params", {}).get("infer_case")
    return case if isinstance(case, Case) else None


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail") and report.skipped:
        return "xfailed"
    if report.failed and report.when != "call":
        return "error"
    return report.outcome


class EngineSummary:
    """Registered per run (state lives here, not at module level)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.engines: set[str] = set()
        self.rows: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"outcomes": defaultdict(int)})
        self.written: Path | None = None

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            case = _case_of(item)
            if case is not None:
                item.user_properties += [(CASE_PROPERTY, case.id),
                                         (ENGINE_PROPERTY, str(case.engine)),
                                         (REFERENCE_PROPERTY, case.is_reference)]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if CASE_PROPERTY not in properties or (report.when != "call" and report.passed):
            return
        self.engines.add(str(properties[ENGINE_PROPERTY]))
        row = self.rows[str(properties[CASE_PROPERTY])]
        row["is_reference"] = bool(properties[REFERENCE_PROPERTY])
        value = properties.get(AGREEMENT_PROPERTY)
        if isinstance(value, (int, float)):
            row[AGREEMENT_PROPERTY] = max(float(value), row.get(AGREEMENT_PROPERTY, 0.0))
        row["outcomes"][_outcome(report)] += 1

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.rows or len(self.engines) < 2 or is_xdist_worker(self.config):
            return
        from infersuite.atomic import write_text_atomic
        from infersuite.report.engine_table import SCHEMA, render_engine_table

        latency = _latency(self.config)
        cases = {case_id: {**row, "outcomes": dict(row["outcomes"]),
                           **latency.get(case_id, {})} for case_id, row in self.rows.items()}
        doc = {"schema": SCHEMA, "cases": cases}
        report_dir = Path(get_settings(self.config).report_dir)
        self.written = report_dir / "engines.json"
        write_text_atomic(self.written, json.dumps(doc, indent=1) + "\n")
        write_text_atomic(report_dir / "engines.md", "# Engines side by side\n\n"
                          + render_engine_table(doc, fmt="github") + "\n")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.written is None:
            return
        from infersuite.report.engine_table import render_engine_table

        terminalreporter.section("infersuite engines")
        for line in render_engine_table(json.loads(self.written.read_text())).splitlines():
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"engines report: {self.written}")


def _latency(config: pytest.Config) -> dict[str, dict[str, Any]]:
    """Case id -> TTFT/TPOT summaries from this run's latency records."""
    from infersuite.plugin.perf import collect_records, perf_state_key
    from infersuite.stats.percentiles import compute_summary

    state = config.stash.get(perf_state_key, None)
    found: dict[str, dict[str, Any]] = {}
    for record in [] if state is None else collect_records(config, state):
        if record.group != "latency" or "[" not in record.fullname:
            continue
        case_id = record.fullname.rsplit("[", 1)[1].rstrip("]")
        found[case_id] = {metric: compute_summary(record.metrics[metric]).to_dict()
                          for metric in ("ttft_s", "tpot_s") if record.metrics.get(metric)}
    return found


def pytest_configure(config: pytest.Config) -> None:
    if not (config.option.help or config.option.markers):
        config.pluginmanager.register(EngineSummary(config), "infersuite-engine-summary")

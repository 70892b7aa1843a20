"""Known findings: where a real engine does not conform, a strict expected failure.

Each engine may ship an expectations file (``infersuite/data/expectations/<engine>.json``,
schema ``infersuite.expectations/1``); users add their own with
``--infer-expectations PATH``. An entry names the test, a glob over case ids, the
conditions under which it holds (package versions, device kind) and the evidence::

    {"test": "test_cache_equivalence", "case": "*-llama.cpp-kv=f16",
     "when": {"packages": {"llama-cpp-python": ">=0.3.36"}, "device": "cpu"},
     "reason": "...", "evidence": "max abs diff 4.2e-3 at ..."}

A matching test is marked ``xfail(strict=True, raises=<conformance failures>)``: every
run lists it, a crash or another error still fails, and a fix shows up as XPASS(strict),
which fails the run until the entry is removed. Nothing is skipped or loosened.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from infersuite.fixtures_path import fixtures_dir
from infersuite.plugin.options import Case, get_settings

SCHEMA = "infersuite.expectations/1"
expectations_key = pytest.StashKey[list["Expectation"]]()


@dataclass(frozen=True)
class Expectation:
    engine: str
    test: str
    case: str
    packages: tuple[tuple[str, str], ...]
    device: str | None
    reason: str
    evidence: str
    source: Path

    def applies(self, test_name: str, case: Case) -> bool:
        from packaging.specifiers import SpecifierSet

        if case.engine.name != self.engine or test_name != self.test:
            return False
        if not fnmatch.fnmatchcase(case.id, self.case):
            return False
        if self.device and not case.device.startswith(self.device):
            return False
        for package, spec in self.packages:
            try:
                version = metadata.version(package)
            except metadata.PackageNotFoundError:
                return False
            if version not in SpecifierSet(spec):
                return False
        return True

    def describe(self) -> str:
        versions = ", ".join(f"{p}{s}" for p, s in self.packages)
        return (f"known finding ({self.engine}{'; ' + versions if versions else ''}): "
                f"{self.reason} Evidence: {self.evidence} [{self.source.name}]")


def _error(path: Path) -> Any:
    from infersuite.documents import DocumentError

    return lambda problem: DocumentError(f"expectations {path}: {problem}")


def load_expectations(path: Path) -> list[Expectation]:
    """The entries of one expectations file; DocumentError names a bad file or entry."""
    from infersuite.documents import parse_document, read_text

    fail = _error(path)
    data = parse_document(read_text(path, fail), SCHEMA,
                          {"engine": str, "expectations": list}, fail)
    entries = []
    for index, entry in enumerate(data["expectations"]):
        missing = [k for k in ("test", "case", "reason", "evidence") if
                   not isinstance(entry.get(k), str)]
        if missing:
            raise fail(f"entry {index} lacks {', '.join(missing)}")
        when = entry.get("when") or {}
        entries.append(Expectation(
            data["engine"], entry["test"], entry["case"],
            tuple(sorted((when.get("packages") or {}).items())), when.get("device"),
            entry["reason"], entry["evidence"], path))
    return entries


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("infersuite").addoption(
        "--infer-expectations", action="append", metavar="PATH",
        help="more known-finding files (schema infersuite.expectations/1), added to the "
             "ones shipped for each engine; matching tests become strict xfails")


def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or config.option.markers:
        return
    from infersuite.documents import DocumentError

    paths = [fixtures_dir() / "expectations" / f"{spec.name}.json"
             for spec in get_settings(config).engines]
    paths = [p for p in paths if p.is_file()]
    paths += [Path(p) for p in config.getoption("infer_expectations") or ()]
    try:
        config.stash[expectations_key] = [e for p in paths for e in load_expectations(p)]
    except DocumentError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(KnownFindings(), "infersuite-known-findings")


FINDING_PROPERTY = "infersuite_known_finding"  # travels with the report (xdist too)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from infersuite.conformance.compare import ConformanceError

    expectations = config.stash.get(expectations_key, [])
    for item in items:
        case = getattr(getattr(item, "callspec", None), "params", {}).get("infer_case")
        if not isinstance(case, Case):
            continue
        name = getattr(item, "originalname", item.name)
        for expectation in expectations:
            if expectation.applies(name, case):
                item.add_marker(pytest.mark.xfail(
                    strict=True, raises=(ConformanceError, AssertionError),
                    reason=expectation.describe()))
                item.user_properties.append((FINDING_PROPERTY, expectation.describe()))
                break


def _outcome(report: pytest.TestReport) -> str:
    if report.skipped and hasattr(report, "wasxfail"):
        return "xfailed"
    if report.failed and "XPASS(strict)" in str(report.longrepr):
        return "XPASS(strict): the finding no longer reproduces; remove its entry"
    return "error" if report.failed and report.when != "call" else report.outcome


class KnownFindings:
    """Collects the outcome of every test a known finding applies to (on the process that
    reports: the xdist controller, or the only process)."""

    def __init__(self) -> None:
        self.findings: list[tuple[str, str, str]] = []  # nodeid, reason, outcome

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        reason = dict(report.user_properties).get(FINDING_PROPERTY)
        if reason is not None and (report.when == "call" or report.failed):
            self.findings.append((report.nodeid, str(reason), _outcome(report)))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.findings:
            return
        terminalreporter.section("infersuite known findings")
        for nodeid, reason, outcome in self.findings:
            terminalreporter.write_line(f"{outcome}: {nodeid}")
            terminalreporter.write_line(f"    {reason}")

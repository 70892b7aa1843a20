"""Known findings: where a real engine does not conform, a strict expected failure.

Each engine may ship an expectations file (``infersuite/data/expectations/<engine>.json``,
schema ``infersuite.expectations/1``); users add their own with
``--infer-expectations PATH``. An entry names the test, a glob over case ids, the
conditions under which it holds (package versions, device kind) and the evidence::

    {"test": "test_cache_equivalence", "case": "*-llama.cpp-kv=f16",
     "when": {"packages": {"llama-cpp-python": ">=0.3.36"}, "device": "cpu"},
     "reason": "...", "evidence": "max abs diff 4.2e-3 at ..."}

An optional ``"id"`` glob narrows an entry to some parametrizations of the test (it is
matched against the whole id in brackets, e.g. ``*-llama.cpp-server-malformed-json``).
A matching test is marked ``xfail(strict=True, raises=<conformance failures>)``: every
run lists it, a crash or another error still fails, and a fix shows up as XPASS(strict),
which fails the run until the entry is removed. Nothing is skipped or loosened.
"""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from infersuite.engines.base import EngineSpec
from infersuite.fixtures_path import fixtures_dir
from infersuite.plugin.options import Case, get_settings

SCHEMA = "infersuite.expectations/1"
expectations_key = pytest.StashKey[list["Expectation"]]()


@dataclass(frozen=True)
class Expectation:
    engine: str
    test: str
    case: str
    param_id: str | None  # glob over the test's whole parametrization id (optional)
    packages: tuple[tuple[str, str], ...]
    device: str | None
    reason: str
    evidence: str
    source: Path

    def applies(self, test_name: str, case: Case, param_id: str = "") -> bool:
        from packaging.specifiers import SpecifierSet

        if case.engine.name != self.engine or test_name != self.test:
            return False
        if not fnmatch.fnmatchcase(case.id, self.case):
            return False
        if self.param_id is not None and not fnmatch.fnmatchcase(param_id, self.param_id):
            return False
        if self.device and not case.device.startswith(self.device):
            return False
        for package, spec in self.packages:
            version = _installed_version(package, case.engine)
            if version is None or version not in SpecifierSet(spec):
                return False
        return True

    def describe(self) -> str:
        versions = ", ".join(f"{p}{s}" for p, s in self.packages)
        return (f"known finding ({self.engine}{'; ' + versions if versions else ''}): "
                f"{self.reason} Evidence: {self.evidence} [{self.source.name}]")


@functools.cache
def _installed_version(package: str, engine: EngineSpec) -> str | None:
    """The package's version where the engine runs: this environment, or for vLLM (a
    server in its own environment) that environment's Python."""
    if engine.name == "vllm":
        from infersuite.engines.base import EngineError
        from infersuite.engines.openai_engine import package_version, vllm_python

        try:
            return package_version(vllm_python(engine), package)
        except EngineError:
            return None
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


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
            data["engine"], entry["test"], entry["case"], entry.get("id"),
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

    settings = get_settings(config)
    names = dict.fromkeys(spec.name for spec in (*settings.engines,
                                                 *settings.serving_engines()))
    paths = [fixtures_dir() / "expectations" / f"{name}.json" for name in names]
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
        callspec = getattr(item, "callspec", None)
        case = getattr(callspec, "params", {}).get("infer_case")
        if not isinstance(case, Case):
            continue
        name = getattr(item, "originalname", item.name)
        for expectation in expectations:
            if expectation.applies(name, case, getattr(callspec, "id", "")):
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

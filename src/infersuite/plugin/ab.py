"""Interleaved A/B in pytest: ``--infer-ab ENGINE_SPEC`` runs each engine benchmark's case
engine (A) and ENGINE_SPEC on the same case (B) in alternating rounds, in random order per
round, and gates on the paired effect (stats/paired.py) after a correction over all
benchmarks. Writes ab.json and ab.md next to the perf report and sets the exit status.

Exit status (the CI recipe in docs/gate.md keys on it): 0 no regression, 1 a test failed,
4 usage error, 10 a regression (B slower), 11 inconclusive (no regression, but some
benchmark's interval stayed wider than the threshold within its budget).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from infersuite.baseline.gate import EXIT_INCONCLUSIVE, EXIT_REGRESSION
from infersuite.engines.base import EngineSpec
from infersuite.plugin.options import get_settings, parse_engine, parse_positive_float

T = TypeVar("T")
ALPHA = 0.01
MAX_ROUNDS = 2000
AB_SCHEMA = "infersuite.ab/1"
SAME = "same"  # --infer-ab same[:k=v]: each case's own engine, those arguments changed


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infersuite", "infersuite: inference conformance and benchmarks")
    group.addoption("--infer-ab", type=parse_engine, metavar="ENGINE_SPEC",
                    help="A/B mode: time each engine benchmark's engine (A) against this "
                         "engine spec on the same case (B), in interleaved rounds; "
                         "same[:k=v,...] is each case's own engine with those arguments "
                         "changed; exit 10 when B is slower, 11 when inconclusive "
                         "(docs/gate.md)")
    group.addoption("--infer-ab-budget-s", type=parse_positive_float, default=30.0,
                    metavar="SECONDS", help="most time one benchmark may add rounds to "
                                            "narrow its interval (default 30)")
    group.addoption("--infer-ab-correction", choices=("holm", "bh"), default="holm",
                    help="multiple-comparison correction over the benchmarks: holm "
                         "(family-wise error, default) or bh (false discovery rate)")


@dataclass
class AbPairs:
    name: str
    fullname: str
    metric: str
    spec: str
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    b_first: list[bool] = field(default_factory=list)
    stop: str = ""
    seconds: float = 0.0


@dataclass
class AbState:
    spec: Any  # EngineSpec of B
    budget_s: float
    correction: str
    threshold: float
    pairs: dict[str, AbPairs] = field(default_factory=dict)
    not_ab: dict[str, str] = field(default_factory=dict)  # benchmark -> why it ran A only
    rows: list[dict[str, Any]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)


ab_state_key = pytest.StashKey[AbState]()


def pytest_configure(config: pytest.Config) -> None:
    spec = config.getoption("infer_ab", None)
    if spec is None or config.option.help:
        return
    if config.getoption("infer_baseline", None) or config.getoption("infer_save_baseline", None):
        raise pytest.UsageError("--infer-ab compares two variants in one run; it does not "
                                "combine with --infer-baseline/--infer-save-baseline")
    if "slowdown" in spec.kwargs:
        from infersuite.engines.base import EngineError, parse_slowdown

        try:
            parse_slowdown(spec)
        except EngineError as exc:
            raise pytest.UsageError(f"--infer-ab {exc}") from None
    config.stash[ab_state_key] = AbState(
        spec, config.getoption("infer_ab_budget_s"), config.getoption("infer_ab_correction"),
        config.getoption("infer_regression_threshold"))


def ab_state(config: pytest.Config) -> AbState | None:
    return config.stash.get(ab_state_key, None)


def resolve_b_spec(b: EngineSpec, a: EngineSpec) -> EngineSpec:
    """B's engine for a case whose engine is `a`: `b` itself, or for ``same[:k=v,...]`` A's
    engine with those arguments set (so one run can hold A/A, or one setting changed, over
    in-process engines, speech engines and servers alike)."""
    if b.name != SAME:
        return b
    changed = dict(b.args)
    kept = tuple((k, v) for k, v in a.args if k not in changed)
    return EngineSpec(a.name, (*kept, *b.args))


def run_interleaved(state: AbState, pairs: AbPairs, call_a: Callable[[], T],
                    call_b: Callable[[], T], value: Callable[[T], float], rounds: int,
                    warmup_rounds: int, seed: int,
                    clock: Callable[[], float] = time.perf_counter) -> list[T]:
    """Warm both up, then rounds of A and B in random order; after each chunk, stop once
    the interval is narrower than the threshold, the budget is spent or MAX_ROUNDS ran.
    Returns A's results (what the benchmark records as usual)."""
    from infersuite.stats.paired import compute_paired_effect, needs_more_rounds

    rng = random.Random(seed)
    for _ in range(warmup_rounds):
        call_a()
        call_b()
    results: list[T] = []
    start, chunk = clock(), rounds
    while True:
        for _ in range(chunk):
            b_first = rng.random() < 0.5
            if b_first:
                got_b = call_b()
                got_a = call_a()
            else:
                got_a = call_a()
                got_b = call_b()
            results.append(got_a)
            pairs.a.append(value(got_a))
            pairs.b.append(value(got_b))
            pairs.b_first.append(b_first)
        pairs.seconds = clock() - start
        effect = compute_paired_effect(pairs.a, pairs.b, confidence=1 - ALPHA)
        if not needs_more_rounds(effect, state.threshold):
            pairs.stop = f"interval narrower than {state.threshold:.0%}"
            break
        if pairs.seconds >= state.budget_s:
            pairs.stop = f"budget {state.budget_s:g} s spent"
            break
        if len(pairs.a) >= MAX_ROUNDS:
            pairs.stop = f"{MAX_ROUNDS} rounds"
            break
        chunk = max(10, rounds // 2)
    return results


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Say which perf benchmarks ran for A only (sweeps and load runs time themselves)."""
    report = yield
    state = ab_state(item.config)
    if (state is not None and report.when == "call" and report.passed
            and item.get_closest_marker("perf") is not None
            and item.nodeid not in state.pairs and item.name not in state.not_ab):
        state.not_ab[item.name] = "a sweep or load run that times itself, outside the A/B rounds"
    return report


def compute_rows(state: AbState) -> list[dict[str, Any]]:
    """One verdict per benchmark, p-values adjusted over all of them."""
    from infersuite.stats.paired import adjust_p_values, compute_paired_effect, decide

    items = [p for p in state.pairs.values() if len(p.a) >= 2]  # a pair cut short: none
    effects = [compute_paired_effect(p.a, p.b, confidence=1 - ALPHA) for p in items]
    slower = adjust_p_values([e.p_slower for e in effects], state.correction)
    faster = adjust_p_values([e.p_faster for e in effects], state.correction)
    rows = []
    for pairs, effect, p_slow, p_fast in zip(items, effects, slower, faster, strict=True):
        verdict = decide(effect, p_slow, p_fast, state.threshold, ALPHA)
        rows.append({"benchmark": pairs.fullname, "name": pairs.name, "metric": pairs.metric,
                     "b": pairs.spec, "status": verdict.status, "reason": verdict.reason,
                     "effect": effect.to_dict(), "p_slower_adjusted": p_slow,
                     "p_faster_adjusted": p_fast, "stop": pairs.stop,
                     "seconds": pairs.seconds, "b_first_rounds": sum(pairs.b_first),
                     "a_s": pairs.a, "b_s": pairs.b})
    return rows


def exit_status(rows: list[dict[str, Any]]) -> int:
    statuses = {r["status"] for r in rows}
    if "regression" in statuses:
        return EXIT_REGRESSION
    if "inconclusive" in statuses:
        return EXIT_INCONCLUSIVE
    return 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = ab_state(session.config)
    if state is None or not state.pairs:
        return
    from infersuite.atomic import write_text_atomic
    from infersuite.report.ab import render_ab_markdown

    state.rows = compute_rows(state)
    folder = Path(get_settings(session.config).report_dir)
    document = {"schema": AB_SCHEMA, "b": str(state.spec), "threshold": state.threshold,
                "alpha": ALPHA, "correction": state.correction, "rows": state.rows,
                "not_ab": state.not_ab}
    for name, text in (("ab.json", json.dumps(document, indent=1) + "\n"),
                       ("ab.md", render_ab_markdown(document))):
        write_text_atomic(folder / name, text)
        state.written.append(str(folder / name))
    status = exit_status(state.rows)
    if status and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = status


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = ab_state(config)
    if state is None or not (state.rows or state.not_ab):
        return
    from infersuite.report.ab import render_ab_table

    terminalreporter.section("infersuite A/B")
    if state.rows:
        terminalreporter.write_line(render_ab_table(state.rows, state, "simple"))
    for name, reason in state.not_ab.items():
        terminalreporter.write_line(f"A only: {name}: {reason}")
    for path in state.written:
        terminalreporter.write_line(f"A/B report: {path}")

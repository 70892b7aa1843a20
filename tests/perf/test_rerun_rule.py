"""baseline/rerun.py's rule and plugin/rerun.py's argument handling, without a run."""

from __future__ import annotations

from pathlib import Path

from infersuite.baseline.gate import GateResult, GateRow
from infersuite.baseline.rerun import apply_rerun, flagged_keys
from infersuite.plugin.rerun import child_args
from infersuite.stats.paired import Effect


def _row(key: str, status: str, ratio: float = 1.3) -> GateRow:
    effect = Effect(ratio=ratio, ratio_lower=ratio - 0.1, ratio_upper=ratio + 0.1,
                    p_slower=1e-4, p_faster=1.0, n=5, confidence=0.99)
    return GateRow(key, key, "round_s", status, effect, f"{status}: as judged", 1.0, ratio,
                   p_slower_adjusted=1e-3)


def _gate(*rows: GateRow) -> GateResult:
    return GateResult(tuple(rows), 0.05)


def test_only_regressions_are_re_measured():
    gate = _gate(_row("a", "regression"), _row("b", "improvement", 0.7),
                 _row("c", "inconclusive"), _row("d", "unchanged", 1.0))
    assert flagged_keys(gate) == ["a"]


def test_a_repeated_regression_stands_and_a_vanished_one_is_inconclusive():
    gate = _gate(_row("a", "regression"), _row("b", "regression"), _row("c", "unchanged"))
    rerun = _gate(_row("a", "regression", 1.28), _row("b", "unchanged", 1.01))
    rows = {r.key: r for r in apply_rerun(gate, rerun).rows}
    assert rows["a"].status == "regression"
    assert rows["a"].rerun["median_ratio"] == 1.28
    assert rows["b"].status == "inconclusive"
    assert "measured again it was unchanged at +1.0%" in rows["b"].reason
    assert rows["c"] == gate.rows[2]


def test_a_regression_the_rerun_could_not_measure_keeps_its_verdict():
    """Its test failed in the child, say: a regression is never lost for want of a second
    measurement."""
    rows = apply_rerun(_gate(_row("a", "regression")), _gate()).rows
    assert rows[0].status == "regression"
    assert rows[0].reason.endswith("not re-measured: it was not measured again (see the "
                                   "re-measurement's log)")


def test_no_rerun_keeps_the_verdicts_and_says_why():
    rows = apply_rerun(_gate(_row("a", "regression")), None, "it exited 2").rows
    assert rows[0].status == "regression"
    assert rows[0].reason.endswith("not re-measured: it exited 2")


def test_child_args_drop_the_parents_outputs_and_last_run_selection():
    args = ["suite", "-m", "perf and not gpu", "--infer-save-baseline", "b.json",
            "--benchmark-json=x.json", "--infer-report-dir", "rep", "--infer-baseline",
            "base.json", "--junitxml", "j.xml", "--benchmark-autosave", "--lf", "--sw",
            "--benchmark-histogram", "-k", "latency", "--benchmark-cprofile-dump=c",
            "--report-log=r.jsonl", "--infer-rerun-of", "/old"]
    assert child_args(args, Path("/r")) == [
        "suite", "-m", "perf and not gpu", "--infer-baseline", "base.json", "-k", "latency",
        "--infer-rerun-of", "/r"]


def test_pytest_addopts_is_filtered_the_same_way(monkeypatch):
    from infersuite.plugin.rerun import child_env

    monkeypatch.setenv("PYTEST_ADDOPTS", "--benchmark-json out.json -q --lf")
    assert child_env()["PYTEST_ADDOPTS"] == "-q"

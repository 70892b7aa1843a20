"""`infersuite compare` and `infersuite report` on files the library writes."""

from __future__ import annotations

import json
import random

import pytest

from infersuite.baseline.store import merge_run, save_baseline
from infersuite.cli import main
from infersuite.measure.records import PerfRecord
from infersuite.report.document import build_report, save_report
from infersuite.report.markdown import render_markdown

FP = {"slug": "cpu-test-2c", "versions": {}, "git_commit": None}


def _records(scale: float, seed: int) -> list[PerfRecord]:
    rng = random.Random(seed)
    slow = [0.010 * scale * (1 + 0.02 * rng.random()) for _ in range(60)]
    steady = [0.020 * (1 + 0.02 * rng.random()) for _ in range(60)]
    return [PerfRecord("test_slow", "t.py::test_slow", "e2e_s", {"e2e_s": slow}),
            PerfRecord("test_steady", "t.py::test_steady", "e2e_s", {"e2e_s": steady})]


def _write_report(directory, scale, seed):
    report = build_report(_records(scale, seed), FP, {})
    return save_report(directory, report, render_markdown(report))[0]


@pytest.fixture
def runs(tmp_path):
    base = _write_report(tmp_path / "a", 1.0, 1)
    same = _write_report(tmp_path / "b", 1.0, 2)
    slower = _write_report(tmp_path / "c", 1.3, 3)
    baseline = tmp_path / "baseline.json"  # six runs: the gate knows the run-to-run spread
    data = None
    for seed in range(4, 10):
        data = merge_run(data, _records(1.0, seed), FP)
    save_baseline(baseline, data)
    return base, same, slower, baseline


def test_compare_renders_side_by_side(runs, capsys):
    base, _same, slower, baseline = runs
    assert main(["compare", str(base), str(slower), str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "[1]/[0] p50" in out
    assert "[2]/[0] p50" in out
    assert "test_slow" in out
    assert "1.3" in out


def test_fail_on_regression_exit_codes(runs, capsys):
    base, same, slower, baseline = runs
    assert main(["compare", str(baseline), str(same), "--fail-on-regression"]) == 0
    assert main(["compare", str(baseline), str(slower), "--fail-on-regression"]) == 10
    out = capsys.readouterr().out
    assert "REGRESSION [1] test_slow" in out
    assert "REGRESSION [1] test_steady" not in out
    # A report (one run) as the first file: its spread is unknown, a shift is inconclusive.
    assert main(["compare", str(base), str(slower), "--fail-on-regression"]) == 11
    assert ("INCONCLUSIVE [1] test_slow: inconclusive: the baseline has 0 recorded runs"
            ) in capsys.readouterr().out
    assert main(["compare", str(base), str(same), "--fail-on-regression"]) == 11


def test_report_rerenders_a_saved_run(runs, capsys):
    assert main(["report", str(runs[0])]) == 0
    assert "p50 ms [95% CI]" in capsys.readouterr().out
    assert main(["report", str(runs[0]), "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("# infersuite perf report")


@pytest.mark.parametrize(("content", "problem"), [
    ("", "the file is empty"),
    ('{"schema": "infersuite.report/1", "bench', "not valid JSON"),
    (json.dumps({"schema": "nope"}), "schema is 'nope'"),
    (json.dumps({"schema": "infersuite.report/2", "benchmarks": []}),
     "schema is 'infersuite.report/2'"),
    (json.dumps({"schema": "infersuite.knee/1", "sweeps": {}}),
     "'sweeps' is missing or not a list"),
])
@pytest.mark.parametrize("command", ["compare", "report"])
def test_bad_file_is_exit_2_with_a_message(tmp_path, capsys, content, problem, command):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main([command, str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert problem in err
    assert "Traceback" not in err


def test_compare_and_the_markdown_report_print_the_same_p99(tmp_path, capsys):
    """One percentile definition: the report's p99 cell and `infersuite compare`'s p99 for
    the same samples agree (a nearest-rank p99 would print 9.8 here, not 9.7)."""
    from infersuite.report.terminal import format_ms
    from infersuite.stats.percentiles import compute_percentile

    samples = [(i / 10) ** 2 / 1e3 for i in range(1, 100)]  # 0.01 .. 98 ms, spread out
    expected = format_ms(compute_percentile(samples, 99))
    nearest_rank = format_ms(sorted(samples)[round(0.99 * (len(samples) - 1))])
    assert expected != nearest_rank, "pick samples where the definitions differ"
    record = PerfRecord("test_spread", "t.py::test_spread", "e2e_s", {"e2e_s": samples})
    report = build_report([record], FP, {})
    markdown = render_markdown(report)
    json_path = save_report(tmp_path, report, markdown)[0]
    row = next(line for line in markdown.splitlines()
               if line.startswith("| test_spread") and "| e2e_s" in line)
    markdown_p99 = [cell.strip() for cell in row.split("|")][7].split()[0]
    assert main(["compare", str(json_path)]) == 0
    compare_row = next(line for line in capsys.readouterr().out.splitlines()
                       if line.startswith("test_spread"))
    assert compare_row.split()[3] == markdown_p99 == expected

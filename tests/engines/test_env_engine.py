"""The ``env`` engine: an engine built in a worker of another Python environment, so two
environments (a baseline checkout or venv and the candidate) meet in one A/B run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from infersuite.plugin.ab import EXIT_INCONCLUSIVE, EXIT_REGRESSION

SRC = Path(__file__).resolve().parents[2] / "src"

PROBE_FILE = """
import torch

def test_probe(infer_case):
    engine = infer_case.engine
    print("WORKER", json.dumps(engine.describe()))
    ids = torch.tensor([[17, 18, 19, 20, 21]])
    mask = torch.ones_like(ids)
    here = infer_case.reference.forward_logits(ids, mask)
    there = engine.forward_logits(ids, mask)
    print("MAXDIFF", float((here - there).abs().max()))
"""


@pytest.fixture
def other_python(tmp_path) -> Path:
    """A second interpreter: a bare venv that finds the stack (torch, transformers) through
    a .pth file, but not this environment's editable infersuite."""
    venv = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                                "'purelib'))"], check=True, capture_output=True,
                               text=True).stdout.strip())
    (site / "stack.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


def _describe(result) -> tuple[dict, float]:
    worker = next(line for line in result.outlines if "WORKER " in line)
    diff = next(line for line in result.outlines if line.startswith("MAXDIFF"))
    return json.loads(worker.split("WORKER ", 1)[1]), float(diff.split()[1])


def test_the_worker_runs_the_other_interpreter_on_the_same_weights(pytester, other_python):
    pytester.makepyfile(test_probe="import json\n" + PROBE_FILE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s", "--infer-model", "llama-tiny",
                                "--infer-device", "cpu", "--infer-engine",
                                f"env:python={other_python}")
    result.assert_outcomes(passed=1)
    describe, diff = _describe(result)
    assert describe["worker_python"] == str(other_python)
    assert describe["worker_prefix"] == str(other_python.parent.parent)
    # only infersuite was put on its path, by a link to this process's package
    assert Path(describe["worker_infersuite"]).resolve() == (SRC / "infersuite").resolve()
    assert describe["worker_torch"]
    assert describe["worker_threads"] == "1"  # --infer-cpu-threads' default
    assert diff < 1e-4  # same zoo weights, built in the other process


def test_checks_that_drive_this_process_model_skip_for_a_worker(pytester, other_python):
    """A module that drives the transformers model directly would judge this process's
    transformers under the worker's name: the env engine does not claim that capability."""
    pytester.makepyfile(test_direct="""
def test_direct(infer_case):
    infer_case.require("transformers")
""")
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "--infer-model", "llama-tiny",
                                "--infer-device", "cpu", "--infer-engine",
                                f"env:python={other_python}")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*lacks transformers*"])


def _tree(tmp_path: Path, name: str, slowdown: float | None = None) -> Path:
    """A copy of this source tree, the way a baseline checkout's src would be; with
    `slowdown`, its hf engine is slower (a planted regression in that tree's code)."""
    root = tmp_path / name / "src"
    shutil.copytree(SRC / "infersuite", root / "infersuite",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if slowdown is not None:
        engine = root / "infersuite" / "engines" / "hf_engine.py"
        text = engine.read_text()
        planted = text.replace("parse_slowdown(context.spec))", f"{slowdown})")
        assert planted != text
        engine.write_text(planted)
    return root


def _run_trees(pytester, copy_suite_module, a: Path, b: Path):
    copy_suite_module("perf/test_latency.py")
    copy_suite_module("perf/conftest.py")
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-model", "llama-tiny",
                                "--infer-device", "cpu", "--infer-engine", f"env:path={a}",
                                "--infer-ab", f"env:path={b}", "--infer-ab-budget-s", "20",
                                "--infer-report-dir", "rep")
    [row] = json.loads((pytester.path / "rep" / "ab.json").read_text())["rows"]
    return result, row


def test_a_slower_checkout_is_a_regression_and_a_copy_is_not(pytester, copy_suite_module,
                                                             tmp_path):
    base = _tree(tmp_path, "base")
    slow, row = _run_trees(pytester, copy_suite_module, base, _tree(tmp_path, "slow", 0.3))
    assert slow.ret == EXIT_REGRESSION, slow.stdout.str()[-3000:]
    assert row["status"] == "regression"
    assert 1.15 < row["effect"]["ratio"] < 1.45, row["reason"]
    copy, row = _run_trees(pytester, copy_suite_module, base, _tree(tmp_path, "copy"))
    assert copy.ret in (0, EXIT_INCONCLUSIVE), copy.stdout.str()[-3000:]
    assert row["status"] in ("unchanged", "inconclusive"), row["reason"]
    # Two processes of the same code need not time alike to the last 0.5% (placement on
    # the cores, memory layout): the copy only has to stay far below the T/2 bar.
    assert abs(row["effect"]["ratio"] - 1.0) < 0.025, row["reason"]


@pytest.mark.parametrize(("spec", "message"), [
    ("env:python=/nonexistent/bin/python", "*python='/nonexistent/bin/python' is not an "
                                           "executable file*"),
    ("env:path=/tmp", "*path='/tmp' holds no infersuite package*"),
    ("env:engine=env", "*engine=env would nest workers*"),
])
def test_bad_arguments_fail_their_cases_with_the_remedy(pytester, spec, message):
    pytester.makepyfile(test_probe="import json\n" + PROBE_FILE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-model", "llama-tiny",
                                "--infer-device", "cpu", "--infer-engine", spec)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])

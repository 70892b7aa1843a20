"""Shared helpers for the project's own tests.

In-process pytester runs restore sys.modules afterwards, and some modules cannot be
imported twice (extension modules such as numpy.fft via scipy.stats; torch op
registrations; transformers' lazy modules), so everything those runs use is imported
here first, before any pytester snapshot."""

from __future__ import annotations

import contextlib
import importlib
import textwrap
from pathlib import Path

import pytest

PRELOAD = (
    "numpy.fft", "scipy.stats", "torch", "transformers",
    "infersuite.stats.compare", "infersuite.stats.percentiles",
    "infersuite.report.document", "infersuite.report.markdown", "infersuite.report.terminal",
    "infersuite.baseline.gate", "infersuite.baseline.store", "infersuite.baseline.fingerprint",
    "infersuite.measure.request", "infersuite.measure.hooks", "infersuite.measure.records",
    "infersuite.measure.timing", "infersuite.models.loader",
    "httpx", "infersuite.serving.client", "infersuite.serving.process",
    "infersuite.serving.proxy", "infersuite.conformance.endpoint",
)

for _name in PRELOAD:
    importlib.import_module(_name)

# Native runtimes abort the process when a pytester run imports them a second time.
for _name in ("onnx", "onnxruntime", "openvino", "torch.onnx", "infersuite.engines.asr_onnx"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)


@pytest.fixture(scope="session", autouse=True)
def _warm_generate_imports() -> None:
    """generate() imports torch submodules (torch.distributed ...) lazily; do it once here,
    before any pytester snapshot, or a later import registers torch ops twice."""
    import torch

    from infersuite.engines.base import EngineSpec
    from infersuite.engines.hf_engine import HFEngine
    from infersuite.measure.request import RequestInput, run_timed_request
    from infersuite.models.loader import load_model

    model = load_model("llama-tiny", torch.float32, "cpu", False).model
    run_timed_request(HFEngine(EngineSpec("hf"), model), RequestInput(None, ((17, 18),)), 2)
    # httpcore imports its socket backend on the first connection: make one (refused), or
    # a pytester run would import a second copy whose errors httpx no longer translates.
    import httpx

    from infersuite.serving.process import free_port

    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{free_port()}/", timeout=1.0)


REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "suite"


@pytest.fixture
def copy_suite_module(pytester: pytest.Pytester):
    """Copy a user-facing suite module into the pytester dir (so a local conftest
    can patch the stack under it)."""

    def copy(relative: str) -> Path:
        source = SUITE / relative
        # A distinct basename: the outer session may already have imported the
        # original module, and pytest refuses two test modules of one name.
        target = pytester.path / source.name.replace("test_", "test_copied_", 1)
        target.write_text(source.read_text())
        return target

    return copy


# A pytester conftest that patches attributes at configure and restores them at unconfigure:
# the way the project's tests plant a fault in a real stack under the suite modules.
PATCHING_CONFTEST = """
{imports}

_undo = []

def patch(obj, name, new):
    _undo.append((obj, name, getattr(obj, name)))
    setattr(obj, name, new)

def pytest_configure(config):
{body}

def pytest_unconfigure(config):
    while _undo:
        obj, name, old = _undo.pop()
        setattr(obj, name, old)
"""


def render_patching_conftest(imports: str, body: str) -> str:
    """Conftest text whose pytest_configure runs `body` (calls to `patch(obj, name, new)`)."""
    return PATCHING_CONFTEST.format(imports=textwrap.dedent(imports).strip(),
                                    body=textwrap.indent(textwrap.dedent(body).strip(), "    "))


@pytest.fixture
def patching_conftest():
    """`patching_conftest(imports, body)` -> conftest text that plants a fault (see above)."""
    return render_patching_conftest


def collect_outcomes(result: pytest.RunResult) -> dict[str, list[str]]:
    """Test id -> outcomes of a pytester run (the call's, and any setup or teardown that
    did not pass)."""
    outcomes: dict[str, list[str]] = {}
    for report in result.reprec.getreports("pytest_runtest_logreport"):
        if report.when == "call" or report.outcome != "passed":
            outcomes.setdefault(report.nodeid, []).append(report.outcome)
    return outcomes


@pytest.fixture
def run_outcomes():
    """`run_outcomes(result)` -> {test id: outcomes} of a pytester run."""
    return collect_outcomes

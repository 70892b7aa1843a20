"""Shared helpers for the project's own tests.

In-process pytester runs restore sys.modules afterwards, and some modules cannot be
imported twice (extension modules such as numpy.fft via scipy.stats; torch op
registrations; transformers' lazy modules), so everything those runs use is imported
here first, before any pytester snapshot."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

PRELOAD = (
    "numpy.fft", "scipy.stats", "torch", "transformers",
    "infersuite.stats.compare", "infersuite.stats.percentiles",
    "infersuite.report.document", "infersuite.report.markdown", "infersuite.report.terminal",
    "infersuite.baseline.gate", "infersuite.baseline.store", "infersuite.baseline.fingerprint",
    "infersuite.measure.request", "infersuite.measure.hooks", "infersuite.measure.records",
    "infersuite.measure.timing", "infersuite.models.loader",
)

for _name in PRELOAD:
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

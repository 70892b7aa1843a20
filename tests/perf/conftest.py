"""Import what pytester runs use before they run: pytester restores sys.modules after each
in-process run, and extension modules (numpy.fft via scipy.stats) cannot load twice."""

from __future__ import annotations

import importlib

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

    from infersuite.measure.request import RequestInput, run_timed_request
    from infersuite.models.loader import load_model

    model = load_model("llama-tiny", torch.float32, "cpu", False).model
    run_timed_request(model, None, RequestInput(None, ((17, 18),)), 2, "cpu")

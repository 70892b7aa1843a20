"""Which device a run is stamped with: the one its selected perf items measure."""

from __future__ import annotations

import json

import pytest

from infersuite.baseline import fingerprint
from infersuite.measure import probe

PRETEND_GPU = """
import pytest

from infersuite.plugin.options import cuda_key


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.stash[cuda_key] = (True, 1)  # as on a GPU host


@pytest.fixture
def infer_case(request):
    return request.param  # the Case alone: nothing is loaded on the pretend GPU
"""
BENCH = """
import pytest

pytestmark = pytest.mark.perf


def test_tiny(benchmark, infer_perf, infer_case):
    samples = infer_perf.measure(benchmark, lambda: 0.001, rounds=3, warmup_rounds=0)
    infer_perf.record({"e2e_s": samples}, primary="e2e_s")
"""


@pytest.fixture
def gpu_host(pytester, monkeypatch):
    def fake_gpu(device):
        if device is None or not device.startswith("cuda"):
            return None
        return {"name": "NVIDIA H200", "memory_bytes": 143 * 2**30, "capability": "9.0"}

    monkeypatch.setattr(fingerprint, "_gpu_info", fake_gpu)
    monkeypatch.setattr(probe, "make_probe", lambda device: lambda: 0.001)  # no CUDA here
    pytester.makeconftest(PRETEND_GPU)
    pytester.makepyfile(test_bench=BENCH)
    return pytester


def _slug(pytester, marks: str) -> str:
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-model", "llama-tiny",
                                "--infer-dtype", "float32", "-m", marks,
                                "--infer-report-dir", "rep")
    result.assert_outcomes(passed=1, deselected=1)
    return json.loads((pytester.path / "rep" / "report.json").read_text())["fingerprint"]["slug"]


def test_cpu_selection_on_a_gpu_host_is_stamped_as_the_cpu(gpu_host):
    assert _slug(gpu_host, "not gpu").startswith("cpu-")


def test_gpu_selection_is_stamped_as_the_gpu(gpu_host):
    """Negative control: the same host and module, the CUDA case selected."""
    assert _slug(gpu_host, "gpu") == "nvidia-h200-143gb"

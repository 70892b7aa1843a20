"""pytest-xdist: workers measure, the controller writes.

Each worker runs its share of the tests and keeps what they recorded (perf samples, knee
sweeps, format rows) in its own state; at the end it hands that state to the controller
through xdist's ``workeroutput``. The controller merges every worker's state into its own
and is the only process that writes reports and baselines. pytest-benchmark switches its
own timing off under xdist, so baselines (saving or gating) need a run without ``-n``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from infersuite.plugin import asr, formats, knee, perf
from infersuite.plugin.options import is_xdist_controller, is_xdist_worker

OUTPUT_KEY = "infersuite"
Export = Callable[[pytest.Config], Any]
Merge = Callable[[pytest.Config, Any], None]
STATES: dict[str, tuple[Export, Merge]] = {
    "perf": (perf.export_state, perf.merge_state),
    "knee": (knee.export_state, knee.merge_state),
    "formats": (formats.export_state, formats.merge_state),
    "asr": (asr.export_state, asr.merge_state),
}


def pytest_configure(config: pytest.Config) -> None:
    if is_xdist_controller(config) and (config.getoption("infer_baseline")
                                        or config.getoption("infer_save_baseline")):
        raise pytest.UsageError(
            "--infer-baseline/--infer-save-baseline with pytest-xdist (-n): pytest-benchmark "
            "does not time benchmarks under xdist, so the gate would compare nothing; run "
            "the perf suite without -n")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a worker: hand the recorded state to the controller (before anything writes)."""
    config = session.config
    if not is_xdist_worker(config):
        return
    exported = {name: export(config) for name, (export, _) in STATES.items()}
    # execnet carries plain builtins only; JSON round-trips anything else to text.
    config.workeroutput[OUTPUT_KEY] = json.loads(  # type: ignore[attr-defined]
        json.dumps({k: v for k, v in exported.items() if v}, default=str))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the controller: merge a finished worker's state."""
    received = getattr(node, "workeroutput", {}).get(OUTPUT_KEY) or {}
    for name, data in received.items():
        STATES[name][1](node.config, data)

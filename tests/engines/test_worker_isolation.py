"""Crash isolation: an engine in a worker process that segfaults fails its own calls only."""

from __future__ import annotations

import gc
from pathlib import Path

import psutil
import pytest
import torch

from infersuite.engines.base import EngineError, EngineSpec, EngineUnsupported

CRASHY_ENGINE = '''
import os
import signal
import time
from pathlib import Path

import torch

from infersuite.engines.base import Engine, EngineSpec, EngineUnsupported

PID_LOG = Path(__file__).parent / "worker-pids.txt"


class Crashy(Engine):
    name = "crashy"
    capabilities = frozenset({"logits", "greedy", "cache", "sampling"})

    def forward_logits(self, input_ids, attention_mask):
        os.kill(os.getpid(), signal.SIGSEGV)

    def generate_greedy(self, input_ids, attention_mask, n_new):
        rows = input_ids.shape[0]
        return (torch.zeros(rows, n_new, dtype=torch.long),
                torch.zeros(rows, n_new, self.vocab_size))

    def prefill(self, input_ids, attention_mask):
        return torch.zeros(*input_ids.shape, self.vocab_size), {"seen": input_ids.shape[1]}

    def decode_step(self, state, input_ids, attention_mask):
        state["seen"] += input_ids.shape[1]
        return torch.full((*input_ids.shape, self.vocab_size), float(state["seen"]))

    def fork(self, state):
        return dict(state)

    def sample(self, input_ids, attention_mask, n_new, *, seed, **kwargs):
        time.sleep(60)  # a hang


def open_engine(payload):
    with PID_LOG.open("a") as log:
        log.write(f"{os.getpid()}\\n")
    if payload.get("unsupported"):
        raise EngineUnsupported("crashy: not this case (raised in the worker)")
    return Crashy(payload["spec"], payload["vocab_size"], 0, [2])


def create(context):
    from infersuite.engines.worker import IsolatedEngine

    payload = {"spec": context.spec, "vocab_size": context.model.config.vocab_size}
    return IsolatedEngine(context.spec, "crashy_engine:open_engine", payload,
                          tokenizer=context.tokenizer)
'''

CONFTEST = '''
import infersuite.engines.base as base

_builtin = base.builtin_engines


def _with_crashy():
    return {**_builtin(), "crashy": "crashy_engine:create"}


base.builtin_engines = _with_crashy


def pytest_unconfigure(config):
    base.builtin_engines = _builtin
'''

SUITE_MODULE = '''
import pytest

from infersuite.engines.hf import pad_left

pytestmark = pytest.mark.conformance


def _ids(infer_case):
    return pad_left(infer_case.prompt_ids()[1:2], infer_case.engine.pad_id)


def test_forward(infer_case):
    logits = infer_case.engine.forward_logits(*_ids(infer_case))
    assert logits.shape[-1] == infer_case.model.config.vocab_size


def test_generate(infer_case):
    tokens, _ = infer_case.engine.generate_greedy(*_ids(infer_case), 3)
    assert tokens.shape == (1, 3)


def test_forward_again(infer_case):
    logits = infer_case.engine.forward_logits(*_ids(infer_case))
    assert logits.shape[-1] == infer_case.model.config.vocab_size


def test_describe(infer_case):
    assert "engine" in infer_case.engine.describe()
'''


def _worker_pids(directory: Path) -> list[int]:
    log = directory / "worker-pids.txt"
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def crashy(pytester):
    pytester.makepyfile(crashy_engine=CRASHY_ENGINE)
    pytester.syspathinsert()
    return pytester


def _isolated(payload_extra=None, timeout_s=600.0, cpus=None):
    from infersuite.engines.worker import IsolatedEngine

    spec = EngineSpec("crashy", (("mode", "test"),))
    payload = {"spec": spec, "vocab_size": 8, **(payload_extra or {})}
    return IsolatedEngine(spec, "crashy_engine:open_engine", payload, timeout_s=timeout_s,
                          cpus=cpus)


def test_workers_asking_for_n_cpus_share_the_last_n(monkeypatch):
    """Two workers of an A/B run land on the same CPUs, whatever the scheduler would do."""
    import os

    from infersuite.engines.worker import worker_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert worker_cpus(1) == {3}
    assert worker_cpus(2) == {2, 3}
    assert worker_cpus(4) is None  # all of them: nothing to choose
    assert worker_cpus(None) is None
    assert worker_cpus(0) is None


def test_a_pinned_worker_runs_on_its_cpus_and_says_so(crashy):
    import os

    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("pinning needs Linux and at least two CPUs")
    last = max(os.sched_getaffinity(0))
    engine = _isolated(cpus=1)
    try:
        pid = _worker_pids(crashy.path)[-1]
        assert os.sched_getaffinity(pid) == {last}
        assert engine.describe()["worker_cpus"] == str(last)
    finally:
        engine.close()
    plain = _isolated()
    try:
        assert "worker_cpus" not in plain.describe()
        assert os.sched_getaffinity(_worker_pids(crashy.path)[-1]) == os.sched_getaffinity(0)
    finally:
        plain.close()


def test_a_segfault_names_signal_call_shapes_and_spec_then_a_fresh_worker(crashy):
    engine = _isolated()
    try:
        ids = torch.ones(1, 2, dtype=torch.long)
        _, state = engine.prefill(ids, ids)
        copy = engine.fork(state)
        assert engine.decode_step(state, ids[:, :1], ids)[0, 0, 0] == 3
        assert engine.decode_step(state, ids[:, :1], ids)[0, 0, 0] == 4
        assert engine.decode_step(copy, ids[:, :1], ids)[0, 0, 0] == 3  # forks are independent
        with pytest.raises(EngineError) as crash:
            engine.forward_logits(ids, ids)
        message = str(crash.value)
        for part in ("SIGSEGV", "forward_logits(int64[1, 2], int64[1, 2])", "crashy:mode=test",
                     "next call starts a fresh worker", "Segmentation fault"):
            assert part in message, f"{part!r} missing from: {message}"
        with pytest.raises(EngineError, match="has died since"):
            engine.decode_step(state, ids[:, :1], ids)
        tokens, _ = engine.generate_greedy(ids, ids, 2)  # a fresh worker answers
        assert tokens.shape == (1, 2)
        # A handle from the dead worker, freed now, must not free the new worker's state
        # that happens to carry the same number.
        _, fresh = engine.prefill(ids, ids)
        del state, copy
        gc.collect()
        assert engine.decode_step(fresh, ids[:, :1], ids)[0, 0, 0] == 3
    finally:
        engine.close()
    pids = _worker_pids(crashy.path)
    assert len(pids) == 2, f"expected the first worker and one restart, got {pids}"
    assert not _alive(pids), f"workers left running after close(): {_alive(pids)}"


def test_build_errors_and_hangs_come_back_as_engine_errors(crashy):
    with pytest.raises(EngineUnsupported, match="raised in the worker"):
        _isolated({"unsupported": True})
    engine = _isolated(timeout_s=1.0)
    try:
        ids = torch.ones(1, 2, dtype=torch.long)
        with pytest.raises(EngineError, match=r"did not answer within 1 s \(killed\)"):
            engine.sample(ids, ids, 2, seed=0)
    finally:
        engine.close()
    assert not _alive(_worker_pids(crashy.path))


def test_a_crashing_engine_fails_its_cases_and_the_run_goes_on(crashy):
    crashy.makeconftest(CONFTEST)
    crashy.makepyfile(test_suite_module=SUITE_MODULE)
    result = crashy.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                              "--infer-engine", "hf", "--infer-engine", "crashy", "-p",
                              "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=6, failed=2)
    output = result.stdout.str()
    for test in ("test_forward", "test_generate", "test_forward_again", "test_describe"):
        assert f"PASSED test_suite_module.py::{test}[llama-tiny-float32-cpu-hf]" in output
    for test in ("test_forward", "test_forward_again"):
        assert f"FAILED test_suite_module.py::{test}[llama-tiny-float32-cpu-crashy]" in output
    assert output.count("died of SIGSEGV during forward_logits(int64[1, ") >= 2, output
    for test in ("test_generate", "test_describe"):
        assert f"PASSED test_suite_module.py::{test}[llama-tiny-float32-cpu-crashy]" in output
    pids = _worker_pids(crashy.path)
    # built for test_forward (crash), restarted for test_generate (then a crash again);
    # test_describe needs no worker
    assert len(pids) == 2, f"expected one worker and one restart: {pids}"
    assert not _alive(pids), f"workers left running after the run: {_alive(pids)}"

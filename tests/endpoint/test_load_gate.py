"""A served stack's latency is gated like an in-process one: load runs against the stub
server saved as a baseline, an unchanged stub passes the gate, and a stub whose gaps
between tokens are 20% longer fails it."""

from __future__ import annotations

import pytest

from infersuite.baseline.gate import EXIT_INCONCLUSIVE, EXIT_REGRESSION

pytestmark = pytest.mark.endpoint

LOAD_FILE = """
import asyncio

import pytest

from infersuite.serving.client import OpenAIClient
from infersuite.serving.load import build_stream_bodies, run_load
from infersuite.serving.stub import StubServer, StubTiming

pytestmark = pytest.mark.perf


def test_stub_load(infer_perf, slowdown):
    stub = StubServer(StubTiming(ttft_s=0.010, itl_s=0.004), seed=1, slowdown=slowdown)
    stub.start()
    try:
        client = OpenAIClient(stub.url)
        run = asyncio.run(run_load(client, build_stream_bodies(client, ["hi"], 68, 16),
                                   concurrency=2, warmup=8))
        infer_perf.record(run.metrics(), primary="itl_s", group="endpoint load")
    finally:
        stub.stop()
"""
CONFTEST = """
import pytest

@pytest.fixture
def slowdown():
    return {factor}
"""


def _run(pytester, factor, *args):
    """Each run in its own interpreter, as CI runs would be: the stub's threads and the
    client share one process, and an in-process run would also share the test session's."""
    pytester.makeconftest(CONFTEST.format(factor=factor))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--infer-device", "cpu",
                                         "--infer-report-dir", "rep", *args)


def test_itl_regression_of_a_stub_is_flagged_and_an_unchanged_stub_is_not(pytester):
    pytester.makepyfile(test_stub_load=LOAD_FILE)
    base = str(pytester.path / "baseline.json")
    for _ in range(4):  # four runs: the gate learns the run-to-run spread
        _run(pytester, 1.0, "--infer-save-baseline", base).assert_outcomes(passed=1)
    same = _run(pytester, 1.0, "--infer-baseline", base)
    # 11 where this host's two baseline runs differ by more than the threshold
    assert same.ret in (0, EXIT_INCONCLUSIVE), same.stdout.str()
    same.stdout.fnmatch_lines(["*regression gate vs*"])
    slow = _run(pytester, 1.5, "--infer-baseline", base)
    slow.assert_outcomes(passed=1)
    assert slow.ret == EXIT_REGRESSION, slow.stdout.str()
    slow.stdout.fnmatch_lines(["*PERFORMANCE REGRESSION*", "*test_stub_load*regression*+*%*"])

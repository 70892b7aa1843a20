"""The load modules against a server the user runs (--infer-endpoint), here the stub: the
same table, the same records."""

from __future__ import annotations

import pytest

from infersuite.serving.stub import StubServer, StubTiming

pytestmark = pytest.mark.endpoint


@pytest.fixture
def stub_url():
    """A stub server the user would have started: its URL, stopped after the test."""
    stub = StubServer(StubTiming(ttft_s=0.004, itl_s=0.001)).start()
    try:
        yield stub.url
    finally:
        stub.stop()


def test_load_levels_against_a_running_server(pytester, copy_suite_module, stub_url):
    copy_suite_module("perf/test_endpoint_load.py")
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-endpoint", stub_url,
                                "--infer-report-dir", "rep", "-k", "c1 or c2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*infersuite endpoint load*",
                                 "*-openai*concurrency 1*ok=48*",
                                 "*-openai*concurrency 2*ok=48*",
                                 "load report: *load.json"])
    assert (pytester.path / "rep" / "load.json").is_file()


def test_a_b_on_a_server_with_a_slowdown_planted_in_its_client(pytester, copy_suite_module,
                                                               stub_url):
    """``--infer-ab same:slowdown=0.3``: the level runs interleaved rounds on A's client and
    on a second client of the same server whose clock runs 30% fast, and is a regression;
    a B that is no server (hf) leaves the level to A and says why, without building it."""
    import json

    copy_suite_module("perf/test_endpoint_load.py")
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-endpoint", stub_url,
                                "--infer-report-dir", "rep", "-k", "c1",
                                "--infer-ab", "same:slowdown=0.3", "--infer-ab-budget-s", "5")
    assert result.ret == 10, result.stdout.str()[-3000:]
    [row] = json.loads((pytester.path / "rep" / "ab.json").read_text())["rows"]
    assert row["name"].endswith("-openai-c1]")
    assert row["metric"] == "itl_s"
    assert row["status"] == "regression"
    assert 1.2 < row["effect"]["ratio"] < 1.4
    assert len(row["a_s"]) >= 10
    other = pytester.runpytest("-p", "no:cacheprovider", "--infer-endpoint", stub_url,
                               "--infer-report-dir", "rep2", "-k", "c1", "--infer-ab", "hf")
    assert other.ret == 0, other.stdout.str()[-3000:]
    other.stdout.fnmatch_lines(["A only: test_endpoint_load*c1]: B (hf) is an in-process "
                                "engine and A (openai) is a server*"])


@pytest.mark.slow
def test_rate_sweep_against_a_running_server(pytester, copy_suite_module, stub_url):
    """The rate sweep through --infer-endpoint (about 40 s): every rate, the bisection and
    the plot."""
    copy_suite_module("perf/test_endpoint_rate_sweep.py")
    result = pytester.runpytest("-p", "no:cacheprovider", "--infer-endpoint", stub_url,
                                "--infer-report-dir", "rep", "-m", "perf")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*single-stream capacity*380 requests per rate*",
                                 "*highest request rate meeting the SLO*",
                                 "load plot: *load_rate-*-openai.png"])

"""Each endpoint check fails on the fault it is written for, planted by a proxy between
the suite and the real llama.cpp server, and passes with the proxy passing everything
through (the negative control)."""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.endpoint

PROXY_CONFTEST = """
import pytest

from infersuite.serving.client import OpenAIClient
from infersuite.serving.proxy import FaultProxy

FAULT = {fault!r}


@pytest.fixture(autouse=True)
def _through_the_proxy(request, monkeypatch):
    if "infer_endpoint" not in request.fixturenames:
        yield
        return
    endpoint = request.getfixturevalue("infer_endpoint")
    proxy = FaultProxy(endpoint.client.base_url, FAULT).start()
    client = OpenAIClient(proxy.url, model=endpoint.client.model)
    monkeypatch.setattr(endpoint.engine, "client", client)
    yield
    client.close()
    proxy.stop()
    print(f"proxy fault {{FAULT}} applied {{proxy.applied}} times")
"""

# fault -> (suite module, -k selection of checks that pass on the clean server, message)
FAULTS = {
    "drop_chunk": ("endpoint/test_endpoint_stream.py",
                   "test_usage_counts_tokens_received and completions",
                   "usage.completion_tokens is 12, 11 tokens were received"),
    "dup_chunk": ("endpoint/test_endpoint_stream.py",
                  "test_usage_counts_tokens_received and completions",
                  "usage.completion_tokens is 12, 13 tokens were received"),
    "swap_answers": ("endpoint/test_endpoint_batching.py", "32-companions",
                     "among 32 concurrent requests vs alone"),
    "truncate_max_tokens": ("endpoint/test_endpoint_semantics.py", "test_max_tokens_exact",
                            "max_tokens=16 on"),
    "strip_logprobs": ("endpoint/test_endpoint_stream.py", "test_usage_counts_tokens_received",
                       "logprobs were asked for, none came back"),
    "stale_prefix": ("endpoint/test_endpoint_prefix.py", "test_prefix_cache_keeps_answers",
                     "computed from another prompt's state"),
}


def _run(pytester, copy_suite_module, fault, module, selection):
    pytester.makeconftest(textwrap.dedent(PROXY_CONFTEST.format(fault=fault)))
    copy_suite_module(module)
    return pytester.runpytest("-p", "no:cacheprovider", "-k", selection, "-s")


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_fails_its_check(pytester, copy_suite_module, fault):
    module, selection, message = FAULTS[fault]
    result = _run(pytester, copy_suite_module, fault, module, selection)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, result.stdout.str()
    assert not outcomes.get("passed"), result.stdout.str()
    result.stdout.fnmatch_lines([f"*ConformanceError*{message}*"])


def test_checks_pass_through_a_clean_proxy(pytester, copy_suite_module):
    """The negative control: every selection above passes through the proxy with no fault."""
    modules = sorted({module for module, _, _ in FAULTS.values()})
    pytester.makeconftest(textwrap.dedent(PROXY_CONFTEST.format(fault="none")))
    for module in modules:
        copy_suite_module(module)
    selection = " or ".join(f"({s})" for _, s, _ in FAULTS.values())
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", selection)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 5, result.stdout.str()
    assert not outcomes.get("failed"), result.stdout.str()

"""The device comparison benchmark fails when the request it times is broken.

Each case patches the timed request path (appended to the copied perf conftest, reverted
at unconfigure) and runs the real suite module against llama-tiny on the CPU.
"""

from __future__ import annotations

import pytest

# Imported here first: in-process pytester runs restore sys.modules afterwards.
import infersuite.measure.request  # noqa: F401

PATCHES = {
    # A clock that never moves: every latency reads 0 s.
    "frozen_clock": """
        orig = request.make_timeline
        patch(request, "make_timeline", lambda device, now_ns=None: orig(device, lambda: 0))
    """,
    # Generation one token short of what was asked.
    "short_generation": """
        from infersuite.engines.hf_engine import HFEngine
        orig = HFEngine.generate_stream
        def patched(self, ids, mask, n_new, on_token):
            return orig(self, ids, mask, n_new - 1, on_token)
        patch(HFEngine, "generate_stream", patched)
    """,
}

FAULT_IMPORTS = """
from infersuite.measure import request
"""

EXPECTED = {
    "frozen_clock": "*request 0 on cpu: TTFT 0.0 s, TPOT 0.0 s, E2E 0.0 s; expected 0 < TTFT*",
    "short_generation": "*generated [[]7[]] tokens on cpu, expected a fixed 8*",
}


def _run(pytester: pytest.Pytester, copy_suite_module, fault: str | None = None,
         patching_conftest=None) -> pytest.RunResult:
    conftest = copy_suite_module("perf/conftest.py")
    if fault is not None:
        conftest.write_text(conftest.read_text()
                            + patching_conftest(FAULT_IMPORTS, PATCHES[fault]))
    copy_suite_module("perf/test_device_compare.py")
    return pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                              "--infer-rounds", "8", "--infer-report-dir", "rep",
                              "-p", "no:cacheprovider", "-rf")


@pytest.mark.parametrize("fault", sorted(PATCHES))
def test_device_compare_fails_on_a_broken_request(fault, pytester, copy_suite_module,
                                                  patching_conftest):
    result = _run(pytester, copy_suite_module, fault, patching_conftest)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([EXPECTED[fault]])


def test_device_compare_passes_on_the_real_request(pytester, copy_suite_module):
    """The control: the same module passes unpatched."""
    _run(pytester, copy_suite_module, None).assert_outcomes(passed=1)

"""The batching tests must fail when what they rest on is missing, not pass vacuously.

Each case patches infersuite's batching engine (in a pytester conftest, reverted at
unconfigure) and runs the real suite module against llama-tiny: the named test must fail
with a message that says which condition was not met.
"""

from __future__ import annotations

import pytest

# Imported here first: in-process pytester runs restore sys.modules afterwards.
import infersuite.engines.batcher  # noqa: F401

PATCHES = {
    # Continuous batching that no longer stamps when each request started and finished:
    # the overlap check then has nothing to go on.
    "untimed_requests": """
        orig = batcher.run_continuous_batching
        def patched(*args, **kwargs):
            outputs = orig(*args, **kwargs)
            for output in outputs:
                output.lifespan = (-1, -1)
            return outputs
        patch(batcher, "run_continuous_batching", patched)
    """,
    # A dynamic batcher that runs every request alone: "batched vs solo" compares solo
    # with solo.
    "one_request_per_batch": """
        orig = batcher.run_planned
        def patched(engine, requests, max_batch_size, **kwargs):
            return orig(engine, requests, max_batch_size=1, **kwargs)
        patch(batcher, "run_planned", patched)
    """,
}

CONFTEST_IMPORTS = """
from infersuite.engines import batcher
"""

# fault -> the test that must fail, and the words its message must contain
EXPECTED = {
    "untimed_requests": ("test_continuous_batching_matches_solo",
                         "continuous batching reported no (start, finish) lifespan for "
                         "requests [(0, (-1, -1)),"),
    "one_request_per_batch": ("test_dynamic_batcher_matches_solo",
                              "no batch held more than one request"),
}


def _run(pytester: pytest.Pytester, copy_suite_module) -> pytest.RunResult:
    copy_suite_module("conformance/test_batching.py")
    return pytester.runpytest("--infer-model", "llama-tiny", "--infer-device", "cpu",
                              "-p", "no:cacheprovider", "-rf")


@pytest.mark.parametrize("fault", sorted(PATCHES))
def test_batching_tests_fail_when_their_condition_is_missing(fault, pytester,
                                                            copy_suite_module,
                                                            patching_conftest):
    pytester.makeconftest(patching_conftest(CONFTEST_IMPORTS, PATCHES[fault]))
    result = _run(pytester, copy_suite_module)
    must_fail, phrase = EXPECTED[fault]
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"FAILED *::{must_fail}[[]llama-tiny-float32-cpu-hf[]]*"])
    assert phrase in result.stdout.str()


def test_unpatched_batching_passes(pytester, copy_suite_module):
    """The control: the same module passes on the real engine."""
    _run(pytester, copy_suite_module).assert_outcomes(passed=2)

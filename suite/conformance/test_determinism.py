"""The same call twice gives the same answer."""

from __future__ import annotations

import pytest

from infersuite.conformance.compare import check_close, check_greedy_runs
from infersuite.engines.hf import pad_left

pytestmark = pytest.mark.conformance


def _inputs(infer_case):
    prompts = infer_case.prompt_ids()
    if "padded_batch" not in infer_case.engine.capabilities:
        prompts = prompts[-1:]  # one unpadded prompt
    return pad_left(prompts, infer_case.engine.pad_id)


def test_forward_is_deterministic(infer_case):
    infer_case.require("logits")
    ids, mask = _inputs(infer_case)
    first = infer_case.engine.forward_logits(ids, mask)
    second = infer_case.engine.forward_logits(ids, mask)
    valid = mask.bool()
    check_close(second[valid], first[valid], infer_case.tolerance,
                "forward logits, second call vs first", infer_case.context,
                axes=("valid_position", "vocab"))


def test_generate_is_deterministic(infer_case):
    infer_case.require("greedy")
    ids, mask = _inputs(infer_case)
    run_a = infer_case.engine.generate_greedy(ids, mask, 8)
    run_b = infer_case.engine.generate_greedy(ids, mask, 8)
    check_greedy_runs(run_b, run_a, infer_case.tolerance, "generate, run 2 vs run 1",
                      infer_case.context)

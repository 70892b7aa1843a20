"""The same call twice gives the same answer."""

from __future__ import annotations

import pytest

from infersuite.conformance.compare import check_close, check_greedy_runs
from infersuite.engines import hf

pytestmark = pytest.mark.conformance


def test_forward_is_deterministic(infer_case):
    ids, mask = hf.pad_left(infer_case.prompt_ids(), hf.pad_id_of(infer_case.model),
                            infer_case.case.device)
    first = hf.forward_logits(infer_case.model, ids, mask)
    second = hf.forward_logits(infer_case.model, ids, mask)
    valid = mask.bool()
    check_close(second[valid], first[valid], infer_case.tolerance,
                "forward logits, second call vs first", infer_case.context,
                axes=("valid_position", "vocab"))


def test_generate_is_deterministic(infer_case):
    ids, mask = hf.pad_left(infer_case.prompt_ids(), hf.pad_id_of(infer_case.model),
                            infer_case.case.device)
    tokens_a, logits_a = hf.generate_greedy(infer_case.model, ids, mask, 8)
    tokens_b, logits_b = hf.generate_greedy(infer_case.model, ids, mask, 8)
    check_greedy_runs((tokens_b, logits_b), (tokens_a, logits_a), infer_case.tolerance,
                      "generate, run 2 vs run 1", infer_case.context)

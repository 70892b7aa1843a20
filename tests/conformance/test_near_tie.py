"""The near-tie rule (Tolerance.tie_margin) as the greedy comparisons apply it."""

from __future__ import annotations

import pytest
import torch

from infersuite.conformance.compare import ConformanceError, check_greedy_runs
from infersuite.conformance.tolerances import LOGITS_TOLERANCES

BF16 = LOGITS_TOLERANCES["bfloat16"]


def _runs(flip_margin: float) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """A reference run whose step 1 has candidates 3 and 4 `flip_margin` apart (logits
    ~20 in size), and a run that took 4 there and went on to other logits."""
    ref_logits = torch.zeros(1, 3, 8)
    ref_logits[0, :, 2] = 20.0
    ref_logits[0, 1, 2] = 0.0
    ref_logits[0, 1, 3], ref_logits[0, 1, 4] = 20.0, 20.0 - flip_margin
    ref_tokens = torch.tensor([[2, 3, 2]])
    logits = ref_logits.clone()
    logits[0, 1, 4] = 20.0 + 0.01  # within the tolerance of the reference logit
    logits[0, 1, 3] = 20.0 - flip_margin + 0.01
    logits[0, 2] = torch.arange(8.0) * 5  # after the flip: another sequence, other logits
    return (torch.tensor([[2, 4, 7]]), logits), (ref_tokens, ref_logits)


def test_bf16_tie_margin_grows_with_the_logits():
    assert BF16.tie_margin(20.0) == pytest.approx(2 * (0.03 * 20 + 0.01 * 20))
    assert BF16.tie_margin(0.1) == pytest.approx(2 * (1e-2 + 1e-3))


def test_a_near_tie_flip_passes_and_later_logits_are_not_compared():
    actual, expected = _runs(flip_margin=0.5)  # < BF16.tie_margin(20) = 1.6
    [result] = check_greedy_runs(actual, expected, BF16, "planted near-tie", {})
    assert result.max_abs_diff < 1.0  # steps 0 and 1 only; step 2 differs by 35


def test_a_flip_beyond_the_tie_margin_fails_and_says_by_how_much():
    """A swap of candidates 3.0 apart needs logits to move by 3.0 at the flip step."""
    actual, expected = _runs(flip_margin=3.0)
    with pytest.raises(ConformanceError, match=r"max abs diff 3\.010e\+00 exceeds tolerance .* "
                                               r"at step=1, vocab=4"):
        check_greedy_runs(actual, expected, BF16, "planted flip", {})


def test_the_old_fixed_margin_would_have_failed_the_legitimate_flip():
    """Control: 2·atol (0.02) as the tie margin, the rule the batching checks used, calls
    the same bf16 near-tie a mismatch."""
    from infersuite.conformance.compare import check_same_tokens

    actual, expected = _runs(flip_margin=0.5)
    with pytest.raises(ConformanceError, match=r"tie margin 2\.0e-02"):
        check_same_tokens(actual[0], expected[0], "fixed margin", {}, expected[1],
                          tie_margin=2 * BF16.atol)

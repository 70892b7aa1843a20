"""Pure-function tests of infersuite.conformance.sampling."""

from __future__ import annotations

import numpy as np
import pytest

from infersuite.conformance.sampling import (
    choose_top_p,
    compute_bins,
    compute_chi_square,
    compute_counts,
    compute_nucleus,
    compute_ranks,
    compute_softmax,
    compute_top_k,
)

PROBS = np.array([0.05, 0.4, 0.3, 0.15, 0.1])


def test_softmax_matches_definition_and_temperature():
    logits = np.array([1.0, 2.0, -np.inf, 0.5])
    probs = compute_softmax(logits, temperature=0.5)
    expected = np.exp([2.0, 4.0, 1.0]) / np.exp([2.0, 4.0, 1.0]).sum()
    assert probs[[0, 1, 3]] == pytest.approx(expected)
    assert probs[2] == 0.0
    with pytest.raises(ValueError, match="temperature"):
        compute_softmax(logits, 0.0)


def test_top_k_and_ranks():
    assert compute_top_k(PROBS, 2).tolist() == [1, 2]
    assert compute_ranks(PROBS).tolist() == [4, 0, 1, 2, 3]


@pytest.mark.parametrize(("top_p", "nucleus"), [
    (0.3, [1]), (0.4, [1]), (0.41, [1, 2]), (0.7, [1, 2]), (0.71, [1, 2, 3]),
    (1.0, [1, 2, 3, 4, 0]),
])
def test_nucleus_is_smallest_prefix_reaching_p(top_p, nucleus):
    assert compute_nucleus(PROBS, top_p).tolist() == nucleus


def test_choose_top_p_lands_between_cumulative_sums():
    choice = choose_top_p(PROBS, min_size=2, max_size=3)
    assert choice.nucleus.tolist() == [1, 2]
    assert choice.top_p == pytest.approx((0.4 + 0.7) / 2)
    assert compute_nucleus(PROBS, choice.top_p).tolist() == [1, 2]


def test_choose_top_p_skips_edges_with_near_ties():
    probs = np.array([0.3, 0.2, 0.2, 0.15, 0.15])
    choice = choose_top_p(probs, min_size=2, max_size=4)
    assert choice.nucleus.size == 3  # sizes 2 and 4 split a tie at their edge


def test_bins_pool_rare_tokens_and_keep_counts():
    probs = np.array([0.5, 0.3, 0.1, 0.06, 0.04])
    counts = np.array([48, 31, 12, 5, 4])
    bins = compute_bins(counts, probs, min_expected=5.0)
    assert bins.labels[:3] == ("token 0", "token 1", "token 2")
    assert bins.observed.sum() == counts.sum()
    assert bins.expected.sum() == pytest.approx(100.0)
    assert (bins.expected >= 5.0).all()
    assert bins.n_pooled_tokens == 1  # only token 4 (expected 4) is pooled
    assert bins.labels[-1] == "token 3 + pooled (1 tokens)"


def test_bins_put_impossible_tokens_in_the_pool():
    probs = np.array([0.5, 0.5, 0.0])
    bins = compute_bins(np.array([40, 40, 20]), probs, min_expected=5.0)
    assert bins.labels[-1].endswith("pooled (1 tokens)")
    assert int(bins.observed[-1]) >= 20


def test_chi_square_matches_scipy_and_rejects_wrong_distribution():
    from scipy.stats import chisquare

    probs = np.array([0.5, 0.3, 0.2])
    counts = np.array([52, 28, 20])
    result = compute_chi_square(counts, probs)
    reference = chisquare(counts, probs * 100)
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.dof == 2
    rng = np.random.default_rng(0)
    wrong = compute_counts(rng.choice(3, size=2000, p=[0.2, 0.3, 0.5]), 3)
    bad = compute_chi_square(wrong, probs)
    assert bad.p_value < 1e-6
    assert "token 0" in bad.describe() or "token 2" in bad.describe()


def test_counts_reject_out_of_range_ids():
    assert compute_counts([0, 2, 2], 3).tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match="outside"):
        compute_counts([3], 3)

"""Pure-function tests of infersuite.conformance.sampling."""

from __future__ import annotations

import numpy as np
import pytest

from infersuite.conformance.sampling import (
    MAX_TAIL_BINS,
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
    assert 0.4 < choice.top_p < 0.7
    assert compute_nucleus(PROBS, choice.top_p).tolist() == [1, 2]


def test_choose_top_p_skips_edges_with_near_ties():
    probs = np.array([0.3, 0.2, 0.2, 0.15, 0.15])
    choice = choose_top_p(probs, min_size=2, max_size=4)
    assert choice.nucleus.size == 3  # sizes 2 and 4 split a tie at their edge


@pytest.mark.parametrize("seed", range(5))
def test_chosen_nucleus_survives_any_perturbation_within_the_tie_margin(seed):
    """The bf16 case: logits at another batch size each move by up to half the tie
    margin; the nucleus at the chosen top_p must not change."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, 64)
    margin = 0.1
    choice = choose_top_p(compute_softmax(logits), tie_margin=margin)
    for _ in range(200):
        moved = logits + rng.uniform(-margin / 2, margin / 2, logits.size)
        nucleus = compute_nucleus(compute_softmax(moved), choice.top_p)
        assert sorted(nucleus.tolist()) == sorted(choice.nucleus.tolist())


def test_a_near_tie_at_the_edge_is_refused():
    """Negative control: two candidates 0.05 apart in logits cannot bound a nucleus when
    the tie margin is 0.1; with a tie margin below their gap they can."""
    logits = np.array([3.0, 2.0, 1.0, 0.95, -2.0])
    probs = compute_softmax(logits)
    assert choose_top_p(probs, min_size=3, max_size=3, tie_margin=0.04).nucleus.size == 3
    with pytest.raises(ValueError, match=r"no nucleus of 3\.\.3 tokens has a clear edge"):
        choose_top_p(probs, min_size=3, max_size=3, tie_margin=0.1)


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


def test_tail_is_cut_by_rank_into_equal_expected_bins():
    """A flat 262k-token distribution at 2000 draws: no token reaches 5 expected draws,
    and the tail becomes MAX_TAIL_BINS rank bins of ~100 expected each."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 0.5, 262_144)
    probs = compute_softmax(logits)
    counts = compute_counts(rng.choice(probs.size, size=2000, p=probs), probs.size)
    bins = compute_bins(counts, probs)
    assert len(bins.labels) == MAX_TAIL_BINS
    assert bins.n_pooled_tokens == probs.size
    assert bins.observed.sum() == 2000
    assert bins.expected.min() >= 5.0
    assert bins.expected == pytest.approx(np.full(MAX_TAIL_BINS, 100.0), abs=1.0)
    assert bins.labels[0].startswith("pooled ranks 1-")
    assert "-262144 (" in bins.labels[-1]
    assert compute_chi_square(counts, probs).p_value > 1e-3  # the right distribution fits


def test_rank_bins_catch_a_sampler_that_ignores_temperature():
    """Power on a flat vocabulary: draws at T=0.5 are rejected against T=1, and a
    sampler that ignores T=0.5 is rejected against T=0.5."""
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 1.0, 262_144)
    p1, p05 = compute_softmax(logits), compute_softmax(logits, 0.5)
    draws_05 = compute_counts(rng.choice(p05.size, size=2000, p=p05), p05.size)
    draws_1 = compute_counts(rng.choice(p1.size, size=2000, p=p1), p1.size)
    assert compute_chi_square(draws_05, p05).p_value > 1e-3
    assert compute_chi_square(draws_05, p1).p_value < 1e-6
    assert compute_chi_square(draws_1, p05).p_value < 1e-6


def test_impossible_tokens_land_in_the_lowest_rank_bin():
    probs = np.concatenate([np.full(1000, 1e-3), np.zeros(10)])
    counts = np.zeros(1010, dtype=np.int64)
    counts[:1000] = 1
    counts[1005] = 10  # drawn although impossible
    bins = compute_bins(counts, probs)
    assert bins.labels[-1].startswith("pooled ranks 95")
    assert "-1010 (" in bins.labels[-1]
    assert bins.observed[-1] - bins.expected[-1] > 9  # the 10 impossible draws show there


def test_a_choice_ignoring_the_margin_breaks_under_the_same_perturbation():
    """Negative control for the test above: chosen with a 1e-3 margin, some nuclei change
    when the logits move by up to 0.05 (found over 50 seeds)."""
    broken = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        logits = rng.normal(0, 3, 64)
        try:
            choice = choose_top_p(compute_softmax(logits), tie_margin=1e-3)
        except ValueError:
            continue
        for _ in range(200):
            moved = logits + rng.uniform(-0.05, 0.05, logits.size)
            if set(compute_nucleus(compute_softmax(moved), choice.top_p).tolist()) != set(
                    choice.nucleus.tolist()):
                broken += 1
                break
    assert broken > 0

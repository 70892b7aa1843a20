"""The paired A/B statistics on samples with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from infersuite.stats.paired import (
    adjust_p_values,
    compute_paired_effect,
    decide,
    needs_more_rounds,
)


def _pairs(n: int, slowdown: float, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rounds with a shared drift (which pairing cancels) and independent noise."""
    rng = np.random.default_rng(seed)
    drift = np.exp(rng.normal(0, 0.3, n))  # the host's mood, shared by A and B of a round
    a = 0.010 * drift * np.exp(rng.normal(0, noise, n))
    b = 0.010 * (1 + slowdown) * drift * np.exp(rng.normal(0, noise, n))
    return a, b


def test_a_known_slowdown_is_estimated_inside_its_interval():
    a, b = _pairs(200, 0.05, 0.03, seed=1)
    effect = compute_paired_effect(a, b)
    assert effect.ratio_lower < 1.05 < effect.ratio_upper
    assert effect.ratio == pytest.approx(1.05, abs=0.01)
    assert effect.p_slower < 1e-10
    assert effect.p_faster > 0.99


def test_pairing_cancels_shared_drift():
    """30% shared drift, 3% own noise: paired, a 5% slowdown is clear at 60 rounds."""
    a, b = _pairs(60, 0.05, 0.03, seed=2)
    verdict = decide(compute_paired_effect(a, b), 1e-6, 1.0, threshold=0.05, alpha=0.01)
    assert verdict.status == "regression", verdict.reason


@pytest.mark.parametrize("seed", range(20))
def test_a_a_is_never_a_regression(seed):
    a, b = _pairs(100, 0.0, 0.05, seed)
    effect = compute_paired_effect(a, b)
    status = decide(effect, effect.p_slower, effect.p_faster, 0.05, 0.01).status
    assert status in ("unchanged", "inconclusive")


def test_identical_ratios_have_an_exact_p_value():
    effect = compute_paired_effect([1.0] * 8, [1.1] * 8)
    assert effect.ratio == pytest.approx(1.1)
    assert effect.p_slower == 0.5 ** 8
    assert effect.p_faster == 1.0
    same = compute_paired_effect([1.0] * 8, [1.0] * 8)
    assert (same.ratio, same.p_slower, same.p_faster) == (1.0, 1.0, 1.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="differ in length"):
        compute_paired_effect([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match=">= 2 rounds"):
        compute_paired_effect([1.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        compute_paired_effect([1.0, 0.0], [1.0, 1.0])


def test_holm_matches_its_definition():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, running max
    assert adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_bh_is_scipys():
    from scipy.stats import false_discovery_control

    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust_p_values(p, "bh") == pytest.approx(list(false_discovery_control(p)))
    with pytest.raises(ValueError, match="expected one of holm, bh"):
        adjust_p_values(p, "bonferroni")


def test_many_benchmarks_need_the_correction():
    """40 A/A benchmarks: unadjusted, a 0.05-level test flags some by chance; after Holm at
    the same level, none."""
    effects = [compute_paired_effect(*_pairs(60, 0.0, 0.05, seed)) for seed in range(40)]
    raw = [e.p_slower for e in effects]
    assert sum(p < 0.05 for p in raw) >= 1
    assert all(p >= 0.05 for p in adjust_p_values(raw, "holm"))


def test_verdicts_and_the_precision_rule():
    wide = compute_paired_effect(*_pairs(8, 0.0, 0.2, seed=3))
    assert needs_more_rounds(wide, 0.05)
    assert decide(wide, 1.0, 1.0, 0.05, 0.01).status == "inconclusive"
    narrow = compute_paired_effect(*_pairs(400, 0.0, 0.02, seed=4))
    assert not needs_more_rounds(narrow, 0.05)
    assert decide(narrow, 1.0, 1.0, 0.05, 0.01).status == "unchanged"
    faster = compute_paired_effect(*_pairs(100, -0.1, 0.02, seed=5))
    assert decide(faster, 1.0, 1e-9, 0.05, 0.01).status == "improvement"

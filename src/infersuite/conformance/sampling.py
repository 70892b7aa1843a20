"""Reference math for sampling checks: softmax, top-k, nucleus, chi-square binning.

Pure functions on numpy arrays (float64); the conformance tests draw samples from
the stack under test and judge them with these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def compute_softmax(logits: Sequence[float] | npt.NDArray[np.floating], temperature: float = 1.0
                    ) -> FloatArray:
    """softmax(logits / temperature) in float64; -inf logits get probability 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    finite = np.isfinite(scaled)
    if not finite.any():
        raise ValueError("every logit is -inf: no token can be sampled")
    shifted = np.where(finite, scaled - scaled[finite].max(), -np.inf)
    weights = np.exp(shifted)
    return weights / weights.sum()


def compute_ranks(probs: FloatArray) -> IntArray:
    """Rank of each token by probability: 0 for the most likely (stable for ties)."""
    order = np.argsort(-probs, kind="stable")
    ranks = np.empty_like(order)
    ranks[order] = np.arange(order.size)
    return ranks.astype(np.int64)


def compute_top_k(probs: FloatArray, k: int) -> IntArray:
    """Token ids of the k most likely tokens, most likely first."""
    if not 1 <= k <= probs.size:
        raise ValueError(f"k must be in [1, {probs.size}], got {k}")
    return np.argsort(-probs, kind="stable")[:k].astype(np.int64)


def compute_nucleus(probs: FloatArray, top_p: float) -> IntArray:
    """The nucleus (top-p set): the fewest most-likely tokens whose total
    probability reaches top_p, most likely first (at least one token)."""
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    order = np.argsort(-probs, kind="stable")
    cumulative = np.cumsum(probs[order])
    size = int(np.searchsorted(cumulative, top_p, side="left")) + 1
    return order[: min(size, order.size)].astype(np.int64)


@dataclass(frozen=True)
class NucleusChoice:
    top_p: float
    nucleus: IntArray  # token ids, most likely first
    boundary_gap: float  # distance from top_p to the nearest cumulative sum


def choose_top_p(probs: FloatArray, min_size: int = 2, max_size: int = 5,
                 tie_margin: float = 1e-2) -> NucleusChoice:
    """Pick top_p so the nucleus has a few tokens and is robust to rounding.

    `tie_margin` is the near-tie rule in logits (``Tolerance.tie_margin``): the logits the
    sampler sees may each differ from these by half of it (another batch size, another
    kernel), which moves every probability, every cumulative sum C and every complement
    1 - C by a factor within e^±tie_margin. A size n is taken only if that cannot change
    the nucleus: the n-th and (n+1)-th tokens' logits differ by more than tie_margin (their
    order holds), and the highest the cumulative sum of size n-1 can move to stays below
    the lowest that of size n can; top_p sits halfway between the two.
    """
    order = np.argsort(-probs, kind="stable")
    sorted_probs = probs[order]
    cumulative = np.cumsum(sorted_probs)
    grow, shrink = np.exp(tie_margin), np.exp(-tie_margin)
    for size in range(min_size, min(max_size, probs.size - 1) + 1):
        edge, outside = sorted_probs[size - 1], sorted_probs[size]
        if outside > 0 and np.log(edge / outside) <= tie_margin:
            continue
        below, above = cumulative[size - 2], cumulative[size - 1]
        highest_below = min(below * grow, 1 - (1 - below) * shrink)
        lowest_above = max(above * shrink, 1 - (1 - above) * grow)
        if highest_below >= lowest_above:
            continue
        top_p = float((highest_below + lowest_above) / 2)
        return NucleusChoice(top_p, order[:size].astype(np.int64),
                             float(min(top_p - below, above - top_p)))
    raise ValueError(f"no nucleus of {min_size}..{max_size} tokens has a clear edge at tie "
                     f"margin {tie_margin:.3g} (top probabilities "
                     f"{sorted_probs[: max_size + 1].round(5).tolist()})")


def compute_counts(samples: Sequence[int] | IntArray, vocab_size: int) -> IntArray:
    """How many times each token id was drawn."""
    values = np.asarray(samples, dtype=np.int64)
    if values.size and (values.min() < 0 or values.max() >= vocab_size):
        raise ValueError(f"sampled ids outside [0, {vocab_size}): min {values.min()}, "
                         f"max {values.max()}")
    return np.bincount(values, minlength=vocab_size).astype(np.int64)


@dataclass(frozen=True)
class Bins:
    observed: IntArray
    expected: FloatArray
    labels: tuple[str, ...]  # "token 17", "pooled (n tokens)" or "pooled ranks a-b (n tokens)"
    n_pooled_tokens: int


MAX_TAIL_BINS = 20


def compute_bins(counts: IntArray, probs: FloatArray, min_expected: float = 5.0,
                 names: Sequence[str] | None = None, max_tail_bins: int = MAX_TAIL_BINS) -> Bins:
    """One bin per token whose expected count reaches min_expected; the rest (the tail)
    pooled by rank: cut in order of probability into up to `max_tail_bins` bins of equal
    expected count, each at least 2·min_expected (one bin when the tail holds less; folded
    into the smallest kept bin when it holds under min_expected).

    Rank bins keep the test's power on flat distributions: on a 262k-token vocabulary at
    2000 draws no single token reaches 5 expected draws, and one pooled bin would leave
    nothing to compare, while a sampler that ignores the temperature moves mass between
    the high- and low-rank bins. The bins depend only on the probabilities, never on the
    draws, so the chi-square distribution of the statistic holds.

    Tokens with probability 0 go into the last (lowest-rank) bin, so a draw of an
    impossible token shows up as observed > expected there.
    """
    n = int(counts.sum())
    if n == 0:
        raise ValueError("no samples to bin")
    if counts.shape != probs.shape:
        raise ValueError(f"counts {counts.shape} and probabilities {probs.shape} differ")
    expected = probs * n
    keep = np.flatnonzero(expected >= min_expected)
    keep = keep[np.argsort(-expected[keep], kind="stable")]
    observed = [int(counts[i]) for i in keep]
    exp_list = [float(expected[i]) for i in keep]
    labels = [f"token {int(i)}" if names is None else names[int(i)] for i in keep]
    tail = np.setdiff1d(np.arange(probs.size), keep)
    tail = tail[np.argsort(-probs[tail], kind="stable")]
    tail_exp = float(expected[tail].sum())
    if tail.size and tail_exp < min_expected and observed:
        # Too little mass to stand alone: fold it into the smallest kept bin.
        observed[-1] += int(counts[tail].sum())
        exp_list[-1] += tail_exp
        labels[-1] += f" + pooled ({tail.size} tokens)"
    elif tail.size:
        n_bins = max(1, min(max_tail_bins, int(tail_exp // (2 * min_expected))))
        cumulative = np.cumsum(expected[tail])
        # Each tail token expects < min_expected, so a cut lands within one token of its
        # target and every bin keeps >= target - min_expected >= min_expected.
        targets = tail_exp * np.arange(1, n_bins) / n_bins
        edges = [0, *(np.searchsorted(cumulative, targets, side="left") + 1).tolist(),
                 tail.size]
        for lo, hi in pairwise(edges):
            members = tail[lo:hi]
            observed.append(int(counts[members].sum()))
            exp_list.append(float(expected[members].sum()))
            ranks = "" if n_bins == 1 else f" ranks {keep.size + lo + 1}-{keep.size + hi}"
            labels.append(f"pooled{ranks} ({members.size} tokens)")
    return Bins(np.asarray(observed, dtype=np.int64), np.asarray(exp_list, dtype=np.float64),
                tuple(labels), int(tail.size))


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    p_value: float
    dof: int
    n_samples: int
    bins: Bins
    worst_bin: int  # the bin that adds most to the statistic

    def describe(self) -> str:
        i = self.worst_bin
        return (f"chi-square {self.statistic:.1f} on {self.dof} dof, p-value {self.p_value:.3g}, "
                f"n={self.n_samples} in {len(self.bins.labels)} bins "
                f"({self.bins.n_pooled_tokens} tokens pooled); largest contribution "
                f"{self.bins.labels[i]}: observed {int(self.bins.observed[i])}, "
                f"expected {self.bins.expected[i]:.1f}")


def compute_chi_square(counts: IntArray, probs: FloatArray, min_expected: float = 5.0,
                       names: Sequence[str] | None = None) -> ChiSquareResult:
    """Pearson goodness of fit of sampled counts to the probabilities (`names`: what each
    index is called in messages; default "token i")."""
    from scipy.stats import chisquare

    bins = compute_bins(counts, probs, min_expected, names)
    if len(bins.observed) < 2:
        raise ValueError("goodness of fit needs at least 2 bins; draw more samples")
    # Renormalise so both sides sum to n exactly (scipy checks it to 1e-8).
    expected = bins.expected * bins.observed.sum() / bins.expected.sum()
    statistic, p_value = chisquare(bins.observed, expected)
    contributions = (bins.observed - expected) ** 2 / expected
    return ChiSquareResult(float(statistic), float(p_value), len(bins.observed) - 1,
                           int(bins.observed.sum()), bins, int(np.argmax(contributions)))


def render_token(token: int, probs: FloatArray) -> str:
    """'token 17 (p=0.0123, rank 9)' for messages."""
    return f"token {token} (p={probs[token]:.4g}, rank {int(compute_ranks(probs)[token])})"

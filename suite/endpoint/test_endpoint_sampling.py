"""Samplers at the API level: many seeded one-token answers at temperature T (with top-k
or top-p) against the distribution the reference's logits imply (Pearson chi-square over
token texts, the tail pooled), as the in-process decoding checks do. Each check also
proves its power: the same draws must be rejected against the distribution a sampler
that ignored the parameter would give."""

from __future__ import annotations

import numpy as np
import pytest

from infersuite.conformance.compare import ConformanceError, render_context
from infersuite.conformance.endpoint import group_by_text
from infersuite.conformance.sampling import (
    choose_top_p,
    compute_chi_square,
    compute_nucleus,
    compute_softmax,
    compute_top_k,
)

pytestmark = [pytest.mark.endpoint, pytest.mark.conformance,
              pytest.mark.infer_cases(serving=True)]
N_DRAWS = 600
MIN_P_VALUE = 1e-3  # a correct sampler fails 1 run in 1000 at most
POWER_P_VALUE = 1e-6  # the ignored-parameter distribution must be rejected this clearly
PROMPT_INDEX = 1


def _restricted(probs, keep):
    out = np.zeros_like(probs)
    out[keep] = probs[keep]
    return out / out.sum()


def _draw(ep, prompt, **params):
    """The first token of each seeded answer, as text (from logprobs: a server may add
    tokens after the first to complete a character, see test_max_tokens_exact)."""
    bodies = [ep.body(prompt, max_tokens=1, seed=seed, logprobs=1, **params)
              for seed in range(N_DRAWS)]
    answers = ep.run_concurrently(bodies, max_connections=8)
    return [ep.texts.shown(a.logprobs[0].token) if a.logprobs else a.text for a in answers]


def _fit(ep, draws, probs, what):
    labels, grouped = group_by_text(probs, ep.texts)
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({d for d in draws if d not in index})
    if unknown:
        raise ConformanceError(f"{what}: sampled texts {unknown[:5]} are no token of the "
                               f"model [{render_context(ep.context)}]")
    counts = np.bincount([index[d] for d in draws], minlength=len(labels))
    names = [f"text {label!r}" for label in labels]
    return compute_chi_square(counts, grouped, names=names), counts, labels


def _judge(ep, draws, probs, ignored, what, record_property):
    result, _, _ = _fit(ep, draws, probs, what)
    record_property("chi_square", result.describe())
    print(f"[{ep.case.id}] {what}: {result.describe()}")
    if result.p_value <= MIN_P_VALUE:
        raise ConformanceError(f"{what}: {N_DRAWS} seeded one-token answers do not follow the "
                               f"reference's distribution: {result.describe()}; threshold "
                               f"p > {MIN_P_VALUE:g} [{render_context(ep.context)}]")
    power, _, _ = _fit(ep, draws, ignored, what)
    assert power.p_value < POWER_P_VALUE, (
        f"{what}: the draws cannot be told from the distribution of a sampler that ignores "
        f"the parameter ({power.describe()}); raise N_DRAWS [{render_context(ep.context)}]")


def _logits(ep):
    prompt = ep.prompts[PROMPT_INDEX]
    return prompt, ep.reference_answer(prompt, 1).logits[0].numpy()


def test_temperature_sampling_fits_reference(infer_endpoint, record_property):
    """temperature=0.5, top_p=1: softmax(logits / 0.5) over the whole vocabulary."""
    ep = infer_endpoint
    prompt, logits = _logits(ep)
    draws = _draw(ep, prompt, temperature=0.5, top_p=1.0)
    _judge(ep, draws, compute_softmax(logits, 0.5), compute_softmax(logits, 1.0),
           "temperature=0.5", record_property)


def test_top_k_sampling_fits_reference(infer_endpoint, record_property):
    """top_k=5 (an extension most servers accept), temperature=1, top_p=1."""
    ep = infer_endpoint
    prompt, logits = _logits(ep)
    probs = compute_softmax(logits)
    draws = _draw(ep, prompt, temperature=1.0, top_p=1.0, top_k=5)
    _judge(ep, draws, _restricted(probs, compute_top_k(probs, 5)), probs, "top_k=5",
           record_property)


def test_top_p_sampling_fits_reference(infer_endpoint, record_property):
    """top_p at the middle of a clear gap in the cumulative probabilities, temperature=1."""
    ep = infer_endpoint
    prompt, logits = _logits(ep)
    probs = compute_softmax(logits)
    choice = choose_top_p(probs)
    draws = _draw(ep, prompt, temperature=1.0, top_p=choice.top_p)
    _judge(ep, draws, _restricted(probs, compute_nucleus(probs, choice.top_p)), probs,
           f"top_p={choice.top_p:.4f} ({choice.nucleus.size}-token nucleus)", record_property)

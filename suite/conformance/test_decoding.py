"""Decoding strategies: greedy, temperature, top-k, top-p, seeds and stopping rules.

Sampling checks draw many first tokens for one prompt and judge them against the softmax
of that step's raw logits. top-k, top-p and seeds go through the engine's own sampler
(`sampling` capability: transformers' generate, llama.cpp's sampler chain); the other
checks drive transformers' generate() options directly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infersuite.conformance.compare import (
    ConformanceError,
    check_close,
    check_same_tokens,
    render_context,
)
from infersuite.conformance.sampling import (
    choose_top_p,
    compute_chi_square,
    compute_counts,
    compute_nucleus,
    compute_softmax,
    compute_top_k,
    render_token,
)
from infersuite.engines import hf

pytestmark = pytest.mark.conformance


@pytest.fixture(autouse=True)
def _transformers_engine(request, infer_case):
    """Checks that drive transformers' generate() options need the transformers model;
    those marked `engine_sampler` use the engine's own sampler instead."""
    if request.node.get_closest_marker("engine_sampler") is not None:
        infer_case.require("sampling")
    elif request.node.get_closest_marker("engine_greedy") is not None:
        infer_case.require("greedy")
    else:
        infer_case.require("transformers")


engine_sampler = pytest.mark.engine_sampler

N_NEW_TOKENS = 8
N_DRAWS = 2000  # first-token samples per distribution check
SEED = 1234
MIN_P_VALUE = 1e-3  # a correct sampler fails 1 run in 1000 at most (fixed seed: never)
POWER_P_VALUE = 1e-6  # the wrong temperature must be rejected at least this clearly


def _prompt(infer_case) -> list[int]:
    """A mid-length shipped prompt."""
    return sorted(infer_case.prompt_ids(), key=len)[len(infer_case.prompt_ids()) // 2]


def _generate(infer_case, prompts: list[list[int]], **kwargs):
    model = infer_case.model
    ids, mask = hf.pad_left(prompts, hf.pad_id_of(model), infer_case.case.device)
    kwargs.setdefault("pad_token_id", hf.pad_id_of(model))
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, return_dict_in_generate=True,
                             **kwargs)
    return out, out.sequences[:, ids.shape[1]:]


def _sample_first_tokens(infer_case, n: int = N_DRAWS, seed: int = SEED,
                         temperature: float = 1.0, top_k: int | None = None,
                         top_p: float | None = None):
    """n first-token draws from the engine's own sampler for one prompt, and the engine's
    raw logits for that step."""
    engine = infer_case.engine
    prompt = _prompt(infer_case)
    ids, mask = hf.pad_left([prompt] * n, engine.pad_id)
    tokens = engine.sample(ids, mask, 1, seed=seed, temperature=temperature, top_k=top_k,
                           top_p=top_p)
    logits = engine.forward_logits(*hf.pad_left([prompt], engine.pad_id))[0, -1]
    return tokens[:, 0].numpy(), logits.double().numpy()


def _batches(infer_case) -> list[list[list[int]]]:
    """The prompts as one padded batch, or one by one for an engine without padding."""
    prompts = infer_case.prompt_ids()
    return [prompts] if "padded_batch" in infer_case.engine.capabilities else \
        [[p] for p in prompts]


def _context(infer_case, **extra) -> str:
    return render_context({**infer_case.context, **extra})


@pytest.mark.engine_greedy
def test_greedy_decoding_is_argmax(infer_case):
    """Each greedy token is the argmax of its step's logits (EOS is suppressed)."""
    engine = infer_case.engine
    for batch in _batches(infer_case):
        tokens, logits = engine.generate_greedy(*hf.pad_left(batch, engine.pad_id),
                                                N_NEW_TOKENS)
        masked = logits.clone()
        masked[..., engine.eos_ids] = float("-inf")
        check_same_tokens(tokens, masked.argmax(-1),
                          "greedy tokens vs argmax of the step logits", infer_case.context,
                          masked, tie_margin=0.0)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_decoding_temperature_scales_scores(infer_case, temperature):
    """The processed scores of a sampling run are the raw logits divided by T."""
    out, _ = _generate(infer_case, infer_case.prompt_ids()[:3], do_sample=True,
                       temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=3,
                       output_scores=True, output_logits=True)
    scores = torch.stack([s.float() for s in out.scores], 1)
    expected = torch.stack([raw.float() for raw in out.logits], 1) / temperature
    finite = torch.isfinite(expected)
    check_close(scores[finite], expected[finite], infer_case.tolerance,
                f"processed scores vs raw logits / T (T={temperature})",
                {**infer_case.context, "temperature": temperature}, axes=("element",))


@engine_sampler
def test_sampling_at_low_temperature_is_greedy(infer_case):
    infer_case.require("greedy")
    temperature = 1e-3
    engine = infer_case.engine
    for batch in _batches(infer_case):
        ids, mask = hf.pad_left(batch, engine.pad_id)
        greedy, greedy_logits = engine.generate_greedy(ids, mask, N_NEW_TOKENS)
        sampled = engine.sample(ids, mask, N_NEW_TOKENS, seed=SEED, temperature=temperature)
        # A logit gap of 30·T leaves the runner-up a probability below e^-30. EOS is
        # suppressed in greedy only: a sampled EOS shows as a divergence there.
        check_same_tokens(sampled, greedy, f"sampling at T={temperature} vs greedy",
                          {**infer_case.context, "temperature": temperature}, greedy_logits,
                          tie_margin=max(30 * temperature, infer_case.tolerance.tie_margin(
                              float(greedy_logits.abs().max()))))


@engine_sampler
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampling_matches_softmax_chi_square(infer_case, temperature, record_property):
    """First-token draws fit softmax(logits / T) (Pearson chi-square, pooled tail).

    At T != 1 the same draws must also be rejected against the T=1 distribution:
    that proves the test has the power to catch a sampler that ignores T.
    """
    samples, logits = _sample_first_tokens(infer_case, temperature=temperature)
    counts = compute_counts(samples, logits.size)
    result = compute_chi_square(counts, compute_softmax(logits, temperature))
    record_property("chi_square", result.describe())
    print(f"[{infer_case.id}] T={temperature} draws vs softmax(logits/T): {result.describe()}")
    if result.p_value <= MIN_P_VALUE:
        raise ConformanceError(
            f"sampled first tokens do not follow softmax(logits/T) at T={temperature}: "
            f"{result.describe()}; threshold p > {MIN_P_VALUE:g} "
            f"[{_context(infer_case, seed=SEED)}]")
    if temperature == 1.0:
        return
    ignored = compute_chi_square(counts, compute_softmax(logits, 1.0))
    print(f"[{infer_case.id}] T={temperature} draws vs softmax(logits): {ignored.describe()}")
    assert ignored.p_value < POWER_P_VALUE, (
        f"chi-square cannot tell T={temperature} draws from the T=1 distribution "
        f"({ignored.describe()}); the check has too little power for this model: raise "
        f"N_DRAWS [{_context(infer_case)}]")


@engine_sampler
def test_top_k_sampling_stays_in_top_k(infer_case):
    k = 5
    samples, logits = _sample_first_tokens(infer_case, n=500, top_k=k)
    probs = compute_softmax(logits)
    allowed = compute_top_k(probs, k)
    # Tokens tied with the k-th logit are legitimately kept by a top-k filter.
    threshold = np.sort(logits)[-k]
    outside = sorted({int(t) for t in samples} - set(allowed.tolist()))
    outside = [t for t in outside if logits[t] < threshold]
    if outside:
        counts = compute_counts(samples, probs.size)
        worst = max(outside, key=lambda t: counts[t])
        raise ConformanceError(
            f"top-k sampling (k={k}) drew {len(outside)} token ids outside the top {k}, "
            f"{int(counts[outside].sum())}/{samples.size} draws; e.g. {render_token(worst, probs)} "
            f"drawn {int(counts[worst])} times; top {k}: {allowed.tolist()} "
            f"[{_context(infer_case, seed=SEED)}]")
    distinct = np.unique(samples)
    assert distinct.size > 1, (
        f"top-k sampling (k={k}) drew only token {distinct.tolist()} in {samples.size} draws; "
        f"top-{k} probabilities {probs[allowed].round(4).tolist()} [{_context(infer_case)}]")


@engine_sampler
def test_top_p_sampling_stays_in_and_covers_nucleus(infer_case):
    """Draws come only from the nucleus, and every nucleus token is drawn."""
    _, logits = _sample_first_tokens(infer_case, n=1)
    probs = compute_softmax(logits)
    # The nucleus is chosen on batch-1 logits and sampled at batch 1000, where reduced
    # precision may reorder near-equal candidates: only an edge clear of a near-tie counts.
    choice = choose_top_p(probs, tie_margin=max(
        1e-2, infer_case.tolerance.tie_margin(float(np.abs(logits).max()))))
    nucleus = compute_nucleus(probs, choice.top_p)
    assert nucleus.tolist() == choice.nucleus.tolist()
    samples, _ = _sample_first_tokens(infer_case, n=1000, top_p=choice.top_p)
    counts = compute_counts(samples, probs.size)
    where = _context(infer_case, seed=SEED)
    described = ", ".join(render_token(int(t), probs) for t in nucleus)
    outside = sorted(set(np.flatnonzero(counts).tolist()) - set(nucleus.tolist()))
    if outside:
        worst = max(outside, key=lambda t: counts[t])
        raise ConformanceError(
            f"top-p sampling (p={choice.top_p:.4f}) drew {len(outside)} token ids outside the "
            f"{nucleus.size}-token nucleus, {int(counts[outside].sum())}/{samples.size} draws; "
            f"e.g. {render_token(worst, probs)} drawn {int(counts[worst])} times; "
            f"nucleus: {described} [{where}]")
    missing = [int(t) for t in nucleus if counts[t] == 0]
    if missing:
        raise ConformanceError(
            f"top-p sampling (p={choice.top_p:.4f}) never drew nucleus tokens {missing} in "
            f"{samples.size} draws; nucleus: {described}; counts "
            f"{counts[nucleus].tolist()} [{where}]")


@engine_sampler
def test_seeded_sampling_is_reproducible(infer_case):
    engine = infer_case.engine
    prompts = infer_case.prompt_ids()[:3]
    batches = [prompts] if "padded_batch" in engine.capabilities else [[p] for p in prompts]

    def draw(seed: int) -> torch.Tensor:
        rows = [engine.sample(*hf.pad_left(batch, engine.pad_id), N_NEW_TOKENS, seed=seed)
                for batch in batches]
        return torch.cat(rows)

    first, again, other = draw(SEED), draw(SEED), draw(SEED + 1)
    check_same_tokens(again, first, f"sampled tokens, same seed {SEED} twice",
                      infer_case.context)
    assert not torch.equal(first, other), (
        f"seeds {SEED} and {SEED + 1} sampled the same {tuple(first.shape)} tokens "
        f"{first.tolist()}: the seed does not reach the sampler [{_context(infer_case)}]")


def test_decoding_stops_at_max_new_tokens(infer_case):
    for limit in (1, 5):
        _, tokens = _generate(infer_case, infer_case.prompt_ids()[:2], do_sample=False,
                              max_new_tokens=limit, min_new_tokens=limit)
        assert tokens.shape[1] == limit, (
            f"max_new_tokens={limit} generated {tokens.shape[1]} tokens "
            f"[{_context(infer_case)}]")


def _solo_greedy(infer_case, prompt: list[int]) -> list[int]:
    ids, mask = hf.pad_left([prompt], hf.pad_id_of(infer_case.model), infer_case.case.device)
    return hf.generate_greedy(infer_case.model, ids, mask, N_NEW_TOKENS)[0][0].tolist()


def _fresh_token_step(tokens: list[int]) -> int | None:
    """The first step >= 1 whose token did not occur before it."""
    return next((s for s in range(1, len(tokens)) if tokens[s] not in tokens[:s]), None)


def test_decoding_stops_at_eos(infer_case):
    """Declare the greedy token of step k the EOS: generation ends right after it."""
    tried = []
    for prompt in infer_case.prompt_ids():
        greedy = _solo_greedy(infer_case, prompt)
        step = _fresh_token_step(greedy)
        if step is not None:
            break
        tried.append(greedy)
    else:
        pytest.skip(f"every prompt's greedy output repeats its first token ({tried}); "
                    "no step can act as EOS")
    # The model's real EOS stays suppressed, as in generate_greedy.
    _, tokens = _generate(infer_case, [prompt], do_sample=False, max_new_tokens=N_NEW_TOKENS,
                          eos_token_id=greedy[step],
                          suppress_tokens=hf.eos_ids(infer_case.model) or None)
    got = tokens[0].tolist()
    assert got == greedy[: step + 1], (
        f"with eos_token_id={greedy[step]} (the greedy token at step {step}) generation "
        f"should stop after {step + 1} tokens {greedy[: step + 1]}; got {len(got)} tokens {got} "
        f"[{_context(infer_case, prompt_len=len(prompt))}]")


def test_decoding_stops_at_stop_string(infer_case):
    tokenizer = infer_case.tokenizer
    if tokenizer is None:
        pytest.skip(f"{infer_case.case.model_id}: no tokenizer, so no stop strings")
    tried = []
    for prompt in infer_case.prompt_ids():
        greedy = _solo_greedy(infer_case, prompt)
        found = _choose_stop_string(tokenizer, greedy)
        if found is not None:
            break
        tried.append(greedy)
    else:
        pytest.skip(f"no prompt's greedy output has a token that decodes to a fresh string "
                    f"of >= 2 characters ({tried})")
    stop, step = found
    _, tokens = _generate(infer_case, [prompt], do_sample=False, max_new_tokens=N_NEW_TOKENS,
                          min_new_tokens=1, stop_strings=[stop], tokenizer=tokenizer,
                          suppress_tokens=hf.eos_ids(infer_case.model) or None)
    got = tokens[0].tolist()
    assert got == greedy[: step + 1], (
        f"stop_strings=[{stop!r}] (the text of greedy step {step}) should end generation "
        f"after {step + 1} tokens {greedy[: step + 1]}; got {len(got)} tokens {got} "
        f"({tokenizer.decode(got)!r}) [{_context(infer_case, prompt_len=len(prompt))}]")


def _choose_stop_string(tokenizer, greedy: list[int]) -> tuple[str, int] | None:
    """A token text (>= 2 chars) whose first appearance in the generated text is
    exactly at its own step, so the expected stopping step is unambiguous."""
    for step in range(1, len(greedy) - 1):
        text = tokenizer.decode([greedy[step]]).strip()
        if len(text) < 2:
            continue
        before = tokenizer.decode(greedy[:step])
        if text not in before and text in tokenizer.decode(greedy[: step + 1]):
            return text, step
    return None

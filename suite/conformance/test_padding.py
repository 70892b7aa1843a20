"""Padding masks: a padded batch must compute what each prompt computes alone."""

from __future__ import annotations

import pytest
import torch

from infersuite.conformance.compare import check_close, check_greedy_runs
from infersuite.engines.hf import pad_left

pytestmark = pytest.mark.conformance

N_NEW_TOKENS = 8


def _batch(infer_case):
    infer_case.require("padded_batch")
    prompts = infer_case.prompt_ids()
    ids, mask = pad_left(prompts, infer_case.engine.pad_id)
    return prompts, ids, mask


def _solo(prompt):
    return pad_left([prompt], 0)


def test_batched_rows_match_solo(infer_case):
    prompts, ids, mask = _batch(infer_case)
    engine = infer_case.engine
    batched = engine.forward_logits(ids, mask)
    for row, prompt in enumerate(prompts):
        solo = engine.forward_logits(*_solo(prompt))[0]
        check_close(batched[row, -len(prompt):], solo, infer_case.tolerance,
                    f"padded batch row {row} vs the prompt alone (valid positions)",
                    {**infer_case.context, "row": row, "prompt_len": len(prompt),
                     "pad": ids.shape[1] - len(prompt)}, axes=("position", "vocab"))


def test_left_padded_last_token_matches_unpadded(infer_case):
    prompts, ids, mask = _batch(infer_case)
    engine = infer_case.engine
    last = engine.forward_logits(ids, mask)[:, -1]
    expected = torch.stack([engine.forward_logits(*_solo(p))[0, -1] for p in prompts])
    check_close(last, expected, infer_case.tolerance,
                "last-token logits, left-padded batch vs unpadded",
                {**infer_case.context, "width": ids.shape[1]}, axes=("row", "vocab"))


def test_padding_token_ids_do_not_leak(infer_case):
    """What sits under the mask must not matter: swap pad ids for random tokens."""
    _, ids, mask = _batch(infer_case)
    engine = infer_case.engine
    noisy = ids.clone()
    generator = torch.Generator().manual_seed(0)
    random_ids = torch.randint(3, engine.vocab_size, ids.shape, generator=generator)
    noisy[mask == 0] = random_ids[mask == 0]
    clean_logits = engine.forward_logits(ids, mask)
    noisy_logits = engine.forward_logits(noisy, mask)
    valid = mask.bool()
    check_close(noisy_logits[valid], clean_logits[valid], infer_case.tolerance,
                "logits at valid positions after changing the ids under padding",
                {**infer_case.context, "valid_positions": int(valid.sum())},
                axes=("valid_position", "vocab"))


def test_batched_greedy_matches_solo(infer_case):
    prompts, ids, mask = _batch(infer_case)
    infer_case.require("greedy")
    engine = infer_case.engine
    tokens, logits = engine.generate_greedy(ids, mask, N_NEW_TOKENS)
    for row, prompt in enumerate(prompts):
        solo_tokens, solo_logits = engine.generate_greedy(*_solo(prompt), N_NEW_TOKENS)
        check_greedy_runs((tokens[row:row + 1], logits[row:row + 1]), (solo_tokens, solo_logits),
                          infer_case.tolerance, f"batched row {row} vs the prompt alone",
                          {**infer_case.context, "batch_row": row, "prompt_len": len(prompt)})


def test_attention_backends_agree(infer_case):
    """eager and SDPA attention give the same logits at valid positions (transformers)."""
    infer_case.require("transformers")
    from infersuite.engines import hf

    model = infer_case.model
    ids, mask = pad_left(infer_case.prompt_ids(), hf.pad_id_of(model), infer_case.case.device)
    original = model.config._attn_implementation
    try:
        model.set_attn_implementation("eager")
        eager = hf.forward_logits(model, ids, mask)
        model.set_attn_implementation("sdpa")
        sdpa = hf.forward_logits(model, ids, mask)
    finally:
        model.set_attn_implementation(original)
    valid = mask.bool()
    check_close(sdpa[valid], eager[valid], infer_case.tolerance,
                "SDPA vs eager attention logits (valid positions)",
                {**infer_case.context}, axes=("valid_position", "vocab"))

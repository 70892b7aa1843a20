"""Padding masks: a padded batch must compute what each prompt computes alone."""

from __future__ import annotations

import pytest
import torch

from infersuite.conformance.compare import check_close, check_greedy_runs
from infersuite.engines import hf

pytestmark = pytest.mark.conformance

N_NEW_TOKENS = 8


def _batch(infer_case):
    prompts = infer_case.prompt_ids()
    ids, mask = hf.pad_left(prompts, hf.pad_id_of(infer_case.model), infer_case.case.device)
    return prompts, ids, mask


def test_batched_rows_match_solo(infer_case):
    prompts, ids, mask = _batch(infer_case)
    batched = hf.forward_logits(infer_case.model, ids, mask)
    for row, prompt in enumerate(prompts):
        solo_ids, solo_mask = hf.pad_left([prompt], 0, infer_case.case.device)
        solo = hf.forward_logits(infer_case.model, solo_ids, solo_mask)[0]
        check_close(batched[row, -len(prompt):], solo, infer_case.tolerance,
                    f"padded batch row {row} vs the prompt alone (valid positions)",
                    {**infer_case.context, "row": row, "prompt_len": len(prompt),
                     "pad": ids.shape[1] - len(prompt)}, axes=("position", "vocab"))


def test_left_padded_last_token_matches_unpadded(infer_case):
    prompts, ids, mask = _batch(infer_case)
    last = hf.forward_logits(infer_case.model, ids, mask)[:, -1]
    expected = torch.stack([
        hf.forward_logits(infer_case.model, *hf.pad_left([p], 0, infer_case.case.device))[0, -1]
        for p in prompts])
    check_close(last, expected, infer_case.tolerance,
                "last-token logits, left-padded batch vs unpadded",
                {**infer_case.context, "width": ids.shape[1]}, axes=("row", "vocab"))


def test_padding_token_ids_do_not_leak(infer_case):
    """What sits under the mask must not matter: swap pad ids for random tokens."""
    _, ids, mask = _batch(infer_case)
    noisy = ids.clone()
    generator = torch.Generator().manual_seed(0)
    random_ids = torch.randint(3, infer_case.model.config.vocab_size, ids.shape,
                               generator=generator).to(ids.device)
    noisy[mask == 0] = random_ids[mask == 0]
    clean_logits = hf.forward_logits(infer_case.model, ids, mask)
    noisy_logits = hf.forward_logits(infer_case.model, noisy, mask)
    valid = mask.bool()
    check_close(noisy_logits[valid], clean_logits[valid], infer_case.tolerance,
                "logits at valid positions after changing the ids under padding",
                {**infer_case.context, "valid_positions": int(valid.sum())},
                axes=("valid_position", "vocab"))


def test_batched_greedy_matches_solo(infer_case):
    prompts, ids, mask = _batch(infer_case)
    tokens, logits = hf.generate_greedy(infer_case.model, ids, mask, N_NEW_TOKENS)
    for row, prompt in enumerate(prompts):
        solo_tokens, solo_logits = hf.generate_greedy(
            infer_case.model, *hf.pad_left([prompt], 0, infer_case.case.device), N_NEW_TOKENS)
        check_greedy_runs((tokens[row:row + 1], logits[row:row + 1]), (solo_tokens, solo_logits),
                          infer_case.tolerance, f"batched row {row} vs the prompt alone",
                          {**infer_case.context, "batch_row": row, "prompt_len": len(prompt)})


def test_attention_backends_agree(infer_case):
    """eager and SDPA attention give the same logits at valid positions."""
    model = infer_case.model
    _, ids, mask = _batch(infer_case)
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

"""Cached decoding must equal naive full recompute; the cache has the right size."""

from __future__ import annotations

import copy

import pytest
import torch

from infersuite.conformance.compare import check_close, check_greedy_runs
from infersuite.conformance.kv_cache import compute_kv_cache_bytes, describe_cache_layers
from infersuite.engines import hf

pytestmark = pytest.mark.conformance

N_NEW_TOKENS = 12


def test_cache_equivalence(infer_case):
    """The stack's cached generate vs a full recompute every step (padded batch)."""
    prompts = infer_case.prompt_ids()
    ids, mask = hf.pad_left(prompts, hf.pad_id_of(infer_case.model), infer_case.case.device)
    naive_tokens, naive_logits = hf.naive_greedy(infer_case.model, ids, mask, N_NEW_TOKENS)
    cached_tokens, cached_logits = hf.generate_greedy(infer_case.model, ids, mask, N_NEW_TOKENS)
    context = {**infer_case.context, "prompt_width": ids.shape[1],
               "first_decode_position": ids.shape[1]}
    check_greedy_runs((cached_tokens, cached_logits), (naive_tokens, naive_logits),
                      infer_case.tolerance, "KV-cached generate vs naive full recompute", context)


def test_cache_continuation(infer_case):
    """Prefill 3 tokens then decode 1 on the saved cache == 4 tokens in one go."""
    prompt = max(infer_case.prompt_ids(), key=len)[:4]
    device = infer_case.case.device
    ids, mask = hf.pad_left([prompt], 0, device)
    one_go = hf.forward_logits(infer_case.model, ids, mask)[:, -1]
    _, cache = hf.prefill(infer_case.model, ids[:, :3], mask[:, :3])
    saved = copy.deepcopy(cache)  # forward mutates a DynamicCache in place
    continued = hf.decode_step(infer_case.model, cache, ids[:, 3:], mask)[:, -1]
    check_close(continued, one_go, infer_case.tolerance,
                "logits after 3-token prefill + 1 cached step vs 4 tokens in one go",
                {**infer_case.context, "position": 3}, axes=("row", "vocab"))
    replay = hf.decode_step(infer_case.model, saved, ids[:, 3:], mask)[:, -1]
    check_close(replay, continued, infer_case.tolerance,
                "the same step replayed on a copy of the saved cache",
                {**infer_case.context, "position": 3}, axes=("row", "vocab"))


def test_cache_shape_and_bytes(infer_case):
    """Per layer (batch, kv_heads, seq, head_dim); bytes =
    2 · layers · kv_heads · head_dim · bytes_per_element · tokens."""
    prompts = infer_case.prompt_ids()
    ids, mask = hf.pad_left(prompts, hf.pad_id_of(infer_case.model), infer_case.case.device)
    _, cache = hf.prefill(infer_case.model, ids, mask)
    layers = describe_cache_layers(infer_case.model.config, batch=ids.shape[0],
                                   tokens=ids.shape[1])
    assert len(cache.layers) == len(layers), (
        f"cache has {len(cache.layers)} layers, the config says {len(layers)}")
    measured_bytes = 0
    for index, (layer, expected) in enumerate(zip(cache.layers, layers, strict=True)):
        for name in ("keys", "values"):
            tensor = getattr(layer, name)
            assert tuple(tensor.shape) == expected.shape, (
                f"layer {index} {name}: shape {tuple(tensor.shape)}, expected {expected.shape} "
                f"(batch, kv_heads, seq, head_dim; {expected.kind}) [{infer_case.id}]")
            assert tensor.dtype == getattr(torch, infer_case.case.dtype), (
                f"layer {index} {name}: stored as {tensor.dtype}, model runs in "
                f"{infer_case.case.dtype} [{infer_case.id}]")
            measured_bytes += tensor.numel() * tensor.element_size()
    expected_bytes = compute_kv_cache_bytes(layers, torch.finfo(
        getattr(torch, infer_case.case.dtype)).bits // 8)
    assert measured_bytes == expected_bytes, (
        f"KV cache holds {measured_bytes} bytes, the formula gives {expected_bytes} "
        f"[{infer_case.id}, tokens={ids.shape[1]}]")

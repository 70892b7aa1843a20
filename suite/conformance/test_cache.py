"""Cached decoding must equal naive full recompute; the cache has the right size."""

from __future__ import annotations

import pytest
import torch

from infersuite.conformance.compare import check_close, check_greedy_runs
from infersuite.conformance.kv_cache import compute_kv_cache_bytes, describe_cache_layers
from infersuite.engines.base import naive_greedy
from infersuite.engines.hf import pad_left

pytestmark = pytest.mark.conformance

N_NEW_TOKENS = 12


def _prompt_batches(infer_case) -> list[list[list[int]]]:
    """The prompts as one padded batch, or one by one for an engine without padding."""
    prompts = infer_case.prompt_ids()
    return [prompts] if "padded_batch" in infer_case.engine.capabilities else \
        [[p] for p in prompts]


def test_cache_equivalence(infer_case):
    """The engine's own cached greedy decoding vs a full recompute every step."""
    infer_case.require("greedy")
    engine = infer_case.engine
    for batch in _prompt_batches(infer_case):
        ids, mask = pad_left(batch, engine.pad_id)
        naive = naive_greedy(engine.forward_logits, ids, mask, N_NEW_TOKENS, engine.eos_ids)
        cached = engine.generate_greedy(ids, mask, N_NEW_TOKENS)
        context = {**infer_case.context, "prompt_width": ids.shape[1],
                   "first_decode_position": ids.shape[1]}
        check_greedy_runs(cached, naive, infer_case.tolerance,
                          "KV-cached generate vs naive full recompute", context)


def test_cache_continuation(infer_case):
    """Prefill 3 tokens then decode 1 on the saved cache == 4 tokens in one go."""
    infer_case.require("cache")
    engine = infer_case.engine
    prompt = max(infer_case.prompt_ids(), key=len)[:4]
    ids, mask = pad_left([prompt], 0)
    one_go = engine.forward_logits(ids, mask)[:, -1]
    prefilled, state = engine.prefill(ids[:, :3], mask[:, :3])
    assert tuple(prefilled.shape) == (1, 1, one_go.shape[-1]), (
        f"prefill returned logits of shape {tuple(prefilled.shape)}; the protocol is the "
        f"last prompt position only, (1, 1, {one_go.shape[-1]}) [{infer_case.id}]")
    check_close(prefilled[:, -1], engine.forward_logits(ids[:, :3], mask[:, :3])[:, -1],
                infer_case.tolerance, "prefill logits vs a plain forward pass",
                {**infer_case.context, "position": 2}, axes=("row", "vocab"))
    saved = engine.fork(state)
    continued = engine.decode_step(state, ids[:, 3:], mask)[:, -1]
    check_close(continued, one_go, infer_case.tolerance,
                "logits after 3-token prefill + 1 cached step vs 4 tokens in one go",
                {**infer_case.context, "position": 3}, axes=("row", "vocab"))
    replay = engine.decode_step(saved, ids[:, 3:], mask)[:, -1]
    check_close(replay, continued, infer_case.tolerance,
                "the same step replayed on a copy of the saved cache",
                {**infer_case.context, "position": 3}, axes=("row", "vocab"))


def test_cache_shape_and_bytes(infer_case):
    """Per layer (batch, kv_heads, seq, head_dim); bytes =
    2 · layers · kv_heads · head_dim · bytes_per_element · tokens."""
    infer_case.require("kv_layout")
    engine = infer_case.engine
    ids, mask = pad_left(infer_case.prompt_ids(), engine.pad_id)
    _, state = engine.prefill(ids, mask)
    tensors = engine.cache_tensors(state)
    layers = describe_cache_layers(infer_case.model.config, batch=ids.shape[0],
                                   tokens=ids.shape[1])
    assert len(tensors) == len(layers), (
        f"cache has {len(tensors)} layers, the config says {len(layers)} [{infer_case.id}]")
    dtype = getattr(torch, infer_case.case.dtype)
    measured_bytes = 0
    for index, (pair, expected) in enumerate(zip(tensors, layers, strict=True)):
        for name, tensor in zip(("keys", "values"), pair, strict=True):
            assert tuple(tensor.shape) == expected.shape, (
                f"layer {index} {name}: shape {tuple(tensor.shape)}, expected {expected.shape} "
                f"(batch, kv_heads, seq, head_dim; {expected.kind}) [{infer_case.id}]")
            assert tensor.dtype == dtype, (
                f"layer {index} {name}: stored as {tensor.dtype}, model runs in "
                f"{infer_case.case.dtype} [{infer_case.id}]")
            measured_bytes += tensor.numel() * tensor.element_size()
    expected_bytes = compute_kv_cache_bytes(layers, torch.finfo(dtype).bits // 8)
    assert measured_bytes == expected_bytes, (
        f"KV cache holds {measured_bytes} bytes, the formula gives {expected_bytes} "
        f"[{infer_case.id}, tokens={ids.shape[1]}]")

"""The KV-cache memory formula, GQA- and sliding-window-aware."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CacheLayerShape:
    kind: str  # "full" or "sliding(window)"
    shape: tuple[int, int, int, int]  # batch, kv_heads, seq, head_dim


def _attention_dims(config: Any) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) from a transformers config."""
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return layers, kv_heads, head_dim


def describe_cache_layers(config: Any, batch: int, tokens: int) -> list[CacheLayerShape]:
    """Expected per-layer cache shapes after `tokens` positions.

    A sliding-window layer keeps the last window-1 keys: with the current query
    they make the window.
    """
    layers, kv_heads, head_dim = _attention_dims(config)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"] * layers
    window = getattr(config, "sliding_window", None)
    shapes = []
    for layer_type in layer_types[:layers]:
        if layer_type == "sliding_attention" and window:
            kept = min(tokens, window - 1)
            shapes.append(CacheLayerShape(f"sliding({window})", (batch, kv_heads, kept, head_dim)))
        else:
            shapes.append(CacheLayerShape("full", (batch, kv_heads, tokens, head_dim)))
    return shapes


def compute_kv_cache_bytes(layers: Sequence[CacheLayerShape], bytes_per_element: int) -> int:
    """2 (K and V) x sum over layers of batch x kv_heads x seq x head_dim x bytes."""
    total = 0
    for layer in layers:
        batch, kv_heads, seq, head_dim = layer.shape
        total += 2 * batch * kv_heads * seq * head_dim * bytes_per_element
    return total

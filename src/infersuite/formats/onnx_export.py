"""Export a causal LM to ONNX: a prefill graph and a decode graph with flat past keys/values."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.engines import hf
from infersuite.formats.errors import FormatError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

OPSET = 17
# Exported from a padded sample whose dims are not 1: a dim that is 1 (or a batch
# without padding) gets specialized or the attention_mask input can vanish.
_PREFILL_SAMPLE = ([5, 6, 7, 8, 9], [10, 11, 12])
_DECODE_PAST_SAMPLE = ([5, 6, 7], [10, 11])
_DECODE_NEW_SAMPLE = ([3, 5], [4, 6])


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    export_s: float
    file_bytes: int
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


def kv_layout(config: Any) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) of the model's KV cache."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim


def past_names(n_layers: int, prefix: str) -> list[str]:
    return [f"{prefix}_{kind}_{i}" for i in range(n_layers) for kind in ("key", "value")]


def decode_export_limitation(config: Any) -> str | None:
    """Why the decode graph cannot be exported faithfully, or None."""
    if "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        return ("sliding-window attention layers: the TorchScript exporter bakes the window's "
                "cache trim into a fixed shape, so ORT fails once the cache passes the window "
                "('Shape mismatch attempting to re-use buffer' in Concat)")
    return None


def _prefill_wrapper(model: PreTrainedModel) -> torch.nn.Module:
    import torch

    class Prefill(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=positions, use_cache=False).logits

    return Prefill().eval()


def _decode_wrapper(model: PreTrainedModel) -> torch.nn.Module:
    import torch
    from transformers import DynamicCache

    n_layers = model.config.num_hidden_layers

    class Decode(torch.nn.Module):
        """A DynamicCache argument does not export: take flat tensors, rebuild it inside."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
            cache = DynamicCache(config=self.model.config)
            for layer in range(n_layers):
                cache.update(past[2 * layer], past[2 * layer + 1], layer)
            n_new = input_ids.shape[1]
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -n_new:]
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=positions, use_cache=True,
                             **hf.cache_kwargs(self.model, cache))
            flat: list[torch.Tensor] = []
            for cached in cache.layers:  # forward fills the cache in place
                flat += [cached.keys, cached.values]  # type: ignore[union-attr,list-item]
            return (out.logits, *flat)

    return Decode().eval()


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str],
            outputs: list[str], dynamic: dict[str, dict[int, str]]) -> OnnxExport:
    import torch

    start = time.perf_counter()
    try:
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET,
                          input_names=inputs, output_names=outputs, dynamic_axes=dynamic)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise FormatError(f"{path}: torch.onnx.export (TorchScript, opset {OPSET}) failed: "
                          f"{exc}") from exc
    export_s = time.perf_counter() - start
    return OnnxExport(path, export_s, path.stat().st_size, tuple(inputs), tuple(outputs))


def export_prefill(model: PreTrainedModel, path: Path) -> OnnxExport:
    """input_ids, attention_mask [batch, seq] -> logits [batch, seq, vocab]; float32."""
    ids, mask = hf.pad_left(_PREFILL_SAMPLE, 0)
    axes = {0: "batch", 1: "seq"}
    dynamic = {"input_ids": axes, "attention_mask": axes, "logits": axes}
    return _export(_prefill_wrapper(model), (ids, mask), path,
                   ["input_ids", "attention_mask"], ["logits"], dynamic)


def export_decode(model: PreTrainedModel, path: Path) -> OnnxExport:
    """input_ids [b, new], attention_mask [b, past+new], past_{key,value}_i
    [b, kv_heads, past, head_dim] -> logits, present_{key,value}_i."""
    import torch

    limitation = decode_export_limitation(model.config)
    if limitation:
        raise FormatError(f"{path}: decode graph not exported: {limitation}")
    ids, mask = hf.pad_left(_DECODE_PAST_SAMPLE, 0)
    _, cache = hf.prefill(model, ids, mask)
    past = [t.clone() for layer in cache.layers  # type: ignore[attr-defined]
            for t in (layer.keys, layer.values)]
    new_ids = torch.tensor(_DECODE_NEW_SAMPLE)
    new_mask = torch.cat([mask, torch.ones_like(new_ids)], dim=1)
    n_layers = model.config.num_hidden_layers
    inputs = ["input_ids", "attention_mask", *past_names(n_layers, "past")]
    outputs = ["logits", *past_names(n_layers, "present")]
    dynamic: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "new"}, "attention_mask": {0: "batch", 1: "total"},
        "logits": {0: "batch", 1: "new"}}
    dynamic.update({name: {0: "batch", 2: "past"} for name in inputs[2:]})
    # One name per present: layers need not agree on length (windowed caches).
    dynamic.update({name: {0: "batch", 2: f"{name}_len"} for name in outputs[1:]})
    return _export(_decode_wrapper(model), (new_ids, new_mask, *past), path,
                   inputs, outputs, dynamic)


def export_encoder(module: torch.nn.Module, example: torch.Tensor, path: Path) -> OnnxExport:
    """A speech encoder: input_features [batch, mels, frames] -> last_hidden_state
    [batch, positions, d_model]; float32, the batch dimension dynamic."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = module

        def forward(self, input_features: torch.Tensor) -> torch.Tensor:
            return self.encoder(input_features).last_hidden_state

    dynamic = {"input_features": {0: "batch"}, "last_hidden_state": {0: "batch"}}
    return _export(Encoder().eval(), (example,), path, ["input_features"],
                   ["last_hidden_state"], dynamic)


def graph_input_names(path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [value.name for value in graph.input]

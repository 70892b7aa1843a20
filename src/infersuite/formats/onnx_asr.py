"""ONNX graphs of an encoder-decoder speech model (Whisper's shape), float32.

Three graphs, as an ONNX runtime serves such a model:

- ``encoder``: input_features [batch, mels, frames] -> last_hidden_state [batch, P, width];
- ``decoder_init``: decoder_input_ids [batch, T], encoder_hidden_states -> logits
  [batch, T, vocab], then per layer the self-attention keys/values of those T tokens
  (``present_key_i``, ``present_value_i``) and the cross-attention keys/values of the
  encoder states (``cross_key_i``, ``cross_value_i``), [batch, heads, T or P, head_dim];
- ``decoder_step``: decoder_input_ids [batch, new], ``past_key_i``/``past_value_i`` and the
  cross keys/values -> logits [batch, new, vocab] and the grown ``present_key_i``/
  ``present_value_i``. The cross-attention keys/values are computed once, by
  decoder_init, and only read here.

A cache argument does not export, so each wrapper takes flat tensors and builds
transformers' EncoderDecoderCache inside (a filled cross-attention cache marks the cross
keys/values as computed, so the decoder reads them instead of the encoder states).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.formats.onnx_export import OnnxExport, _export, export_encoder

if TYPE_CHECKING:
    import torch


def _names(prefix: str, layers: int) -> list[str]:
    return [f"{prefix}_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]


def _flat(cache: Any) -> list[torch.Tensor]:
    return [t for layer in cache.layers for t in (layer.keys, layer.values)]


def _cache(model: Any, self_kv: tuple[torch.Tensor, ...] = (),
           cross_kv: tuple[torch.Tensor, ...] = ()) -> Any:
    from transformers import DynamicCache, EncoderDecoderCache

    caches = [DynamicCache(config=model.config), DynamicCache(config=model.config)]
    for cache, flat in zip(caches, (self_kv, cross_kv), strict=True):
        for layer in range(len(flat) // 2):
            cache.update(flat[2 * layer], flat[2 * layer + 1], layer)
    return EncoderDecoderCache(*caches)


def _decoder_init(model: Any) -> torch.nn.Module:
    import torch

    from infersuite.engines.hf import cache_kwargs

    class DecoderInit(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, ...]:
            cache = _cache(self.model)
            logits = self.model(encoder_outputs=(states,), decoder_input_ids=ids,
                                use_cache=True, **cache_kwargs(self.model, cache)).logits
            return (logits, *_flat(cache.self_attention_cache),
                    *_flat(cache.cross_attention_cache))

    return DecoderInit().eval()


def _decoder_step(model: Any) -> torch.nn.Module:
    import torch

    from infersuite.engines.hf import cache_kwargs

    layers = model.config.decoder_layers

    class DecoderStep(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
            past, cross = flat[:2 * layers], flat[2 * layers:]
            cache = _cache(self.model, past, cross)
            # Only tested for None: with the cross keys/values cached, never read.
            stand_in = cross[0].new_zeros(ids.shape[0], 1, self.model.config.d_model)
            logits = self.model(encoder_outputs=(stand_in,), decoder_input_ids=ids,
                                use_cache=True, **cache_kwargs(self.model, cache)).logits
            return (logits, *_flat(cache.self_attention_cache))

    return DecoderStep().eval()


def export_asr_graphs(model: Any, features: torch.Tensor, folder: Path) -> dict[str, OnnxExport]:
    """The three graphs of `model` (WhisperForConditionalGeneration, float32, CPU) in
    `folder`, traced on `features` [batch, mels, frames] (batch >= 1)."""
    import torch

    from infersuite.engines.hf import cache_kwargs

    layers = model.config.decoder_layers
    folder.mkdir(parents=True, exist_ok=True)
    exports = {"encoder": export_encoder(model.model.encoder, features,
                                         folder / "encoder.onnx")}
    batch = features.shape[0]
    ids = torch.full((batch, 2), int(model.config.decoder_start_token_id), dtype=torch.long)
    with torch.no_grad():  # not inference_mode: these tensors feed the tracer
        states = model.model.encoder(features).last_hidden_state
    dims = {0: "batch"}
    self_axes = {0: "batch", 2: "past"}
    init_out = ["logits", *_names("present", layers), *_names("cross", layers)]
    exports["decoder_init"] = _export(
        _decoder_init(model), (ids, states), folder / "decoder_init.onnx",
        ["decoder_input_ids", "encoder_hidden_states"], init_out,
        {"decoder_input_ids": {0: "batch", 1: "tokens"}, "encoder_hidden_states": dims,
         "logits": {0: "batch", 1: "tokens"},
         **{n: self_axes for n in _names("present", layers)},
         **{n: dims for n in _names("cross", layers)}})
    cache = _cache(model)
    with torch.no_grad():
        model(encoder_outputs=(states,), decoder_input_ids=ids, use_cache=True,
              **cache_kwargs(model, cache))
    past = [t.clone() for t in _flat(cache.self_attention_cache)]
    cross = [t.clone() for t in _flat(cache.cross_attention_cache)]
    step_in = ["decoder_input_ids", *_names("past", layers), *_names("cross", layers)]
    exports["decoder_step"] = _export(
        _decoder_step(model), (ids[:, :1], *past, *cross), folder / "decoder_step.onnx",
        step_in, ["logits", *_names("present", layers)],
        {"decoder_input_ids": {0: "batch", 1: "new"}, "logits": {0: "batch", 1: "new"},
         **{n: self_axes for n in _names("past", layers)},
         **{n: self_axes for n in _names("present", layers)},
         **{n: dims for n in _names("cross", layers)}})
    return exports

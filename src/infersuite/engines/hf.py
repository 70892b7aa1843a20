"""Run a transformers causal LM: forward passes, naive and cached greedy decoding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: 0 at each row's first real token."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def pad_left(
    sequences: Sequence[Sequence[int]], pad_id: int, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists into (input_ids, attention_mask)."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            ids[row, width - len(seq):] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


def eos_ids(model: PreTrainedModel) -> list[int]:
    value = getattr(model.generation_config, "eos_token_id", None)
    if value is None:
        value = getattr(model.config, "eos_token_id", None)
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def pad_id_of(model: PreTrainedModel) -> int:
    for source in (model.generation_config, model.config):
        value = getattr(source, "pad_token_id", None)
        if value is not None:
            return int(value)
    eos = eos_ids(model)
    return eos[0] if eos else 0


def cache_kwargs(model: PreTrainedModel, cache: object) -> dict[str, object]:
    """The keyword that hands a cache to ``model.forward``.

    transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name warns and is
    slated for removal); older 5.x releases know only ``past_key_values``.
    """
    import inspect

    parameters = inspect.signature(model.forward).parameters
    return {"cache": cache} if "cache" in parameters else {"past_key_values": cache}


def _forward(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             cache: object | None = None, last_only: bool = False) -> torch.Tensor:
    """One forward pass in inference mode, positions from the mask (the last
    ``input_ids.shape[1]`` of them); with `cache`, on top of it (mutated in place);
    `last_only`: the LM head runs on the last position alone (``logits_to_keep=1``)."""
    import torch

    position_ids = position_ids_from_mask(attention_mask)[:, -input_ids.shape[1]:]
    with torch.inference_mode():
        out = model(input_ids=input_ids, attention_mask=attention_mask,
                    position_ids=position_ids, use_cache=cache is not None,
                    **({} if cache is None else cache_kwargs(model, cache)),
                    **({"logits_to_keep": 1} if last_only else {}))
    return out.logits.float()


def forward_logits(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Full-sequence logits (float32), positions derived from the mask."""
    return _forward(model, input_ids, attention_mask)


def naive_greedy(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_new: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding as a learner writes it: recompute the whole sequence every step
    (see ``engines.base.naive_greedy``). Returns (tokens [B, n_new], step logits)."""
    from functools import partial

    from infersuite.engines.base import naive_greedy as loop

    return loop(partial(forward_logits, model), input_ids, attention_mask, n_new,
                eos_ids(model))


def generate_greedy(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_new: int,
    **generate_kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The stack's own cached greedy generation, fixed length (EOS never ends it); extra
    keywords go to ``generate`` (e.g. a static cache and a compile config).

    Returns (tokens [B, n_new], raw step logits [B, n_new, V]).
    """
    import torch

    with torch.inference_mode():
        out = model.generate(  # type: ignore[operator]
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            pad_token_id=pad_id_of(model),
            output_logits=True,
            return_dict_in_generate=True,
            use_cache=True,
            **generate_kwargs,
        )
    tokens = out.sequences[:, input_ids.shape[1]:]
    return tokens, torch.stack([step.float() for step in out.logits], 1)


def prefill(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, object]:
    """Run the prompt with a fresh cache; returns (logits [B, 1, V] of the last position,
    cache), as generation's prefill does."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    return _forward(model, input_ids, attention_mask, cache, last_only=True), cache


def decode_step(
    model: PreTrainedModel,
    cache: object,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Feed new tokens on top of `cache` (mutated in place); `attention_mask` covers
    past + new tokens. Returns logits for the new tokens."""
    return _forward(model, input_ids, attention_mask, cache)

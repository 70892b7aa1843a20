"""The transformers side of a sweep: timed generate/prefill/decode, model facts, MBU/MFU.

Every timed region has a synchronized boundary: CUDA events around it (read after one
``synchronize``) on a GPU, ``perf_counter`` on the CPU.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infersuite.conformance.kv_cache import compute_kv_cache_bytes, describe_cache_layers
from infersuite.engines import hf
from infersuite.measure.clocks import make_timeline, synchronize, time_region
from infersuite.measure.hooks import token_mark_hooks
from infersuite.stats.roofline import (
    compute_decode_bytes,
    compute_mbu,
    compute_mfu,
    compute_prefill_flops,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from infersuite.measure.calibration import Calibration
    from infersuite.measure.sweep import PointResult


def build_fixed_prompt(ids: Sequence[int], length: int) -> list[int]:
    """``ids`` repeated/truncated to exactly ``length`` tokens (no padding in the batch)."""
    if not ids:
        raise ValueError("build_fixed_prompt: the prompt has no tokens")
    return [ids[i % len(ids)] for i in range(length)]


class HFSweepRunner:
    """Runs a causal LM for the sweep: whole-batch ``generate``, eager or through an engine's
    generate keywords (``hf-compiled``: static cache and torch.compile), and its profile."""

    def __init__(self, model: PreTrainedModel, prompt: Sequence[int], new_tokens: int,
                 device: str, generate_kwargs: dict[str, Any] | None = None,
                 slowdown: float = 0.0) -> None:
        self.model, self.prompt, self.device = model, list(prompt), device
        self.new_tokens = new_tokens
        self.generate_kwargs = dict(generate_kwargs or {})
        self.slowdown = slowdown  # the engine's planted slowdown (hf's slowdown=), if any

    def _inputs(self, batch: int) -> tuple[Any, Any]:
        import torch

        ids = torch.tensor([self.prompt] * batch, dtype=torch.long, device=self.device)
        return ids, torch.ones_like(ids)

    def _generate(self, batch: int, on_token: Any = None) -> None:
        import torch

        ids, mask = self._inputs(batch)
        with torch.inference_mode():
            self.model.generate(  # type: ignore[operator]
                input_ids=ids, attention_mask=mask, do_sample=False,
                max_new_tokens=self.new_tokens, min_new_tokens=self.new_tokens,
                pad_token_id=hf.pad_id_of(self.model), use_cache=True,
                **token_mark_hooks(on_token, self.slowdown), **self.generate_kwargs)

    def generate(self, batch: int) -> float:
        return time_region(lambda: self._generate(batch), self.device)[1]

    def profile(self, batch: int) -> tuple[float, list[float]]:
        """The same generate() as the timed rounds, with a mark after each step's forward
        pass (the marks TTFT and ITL use): prefill = call to the first step's logits, then
        each decode step's time. The same shapes as the rounds, so a compiled engine does
        not recompile, and its decode steps are the compiled ones."""
        synchronize(self.device)
        timeline = make_timeline(self.device)
        timeline.mark("start")
        self._generate(batch, on_token=lambda: timeline.mark("token"))
        stamps = timeline.resolve_s()
        return stamps[1], [b - a for a, b in itertools.pairwise(stamps[1:])]


@dataclass(frozen=True)
class ModelFacts:
    """What the roofline formulas need to know about a model."""

    weight_bytes: int  # read per decode step: all weights but an untied input embedding
    linear_params: int  # weights of linear layers except the output head
    head_params: int  # output head (tied or not)
    n_layers: int
    attention_dim: int  # heads x head_dim
    bytes_per_element: int  # of the KV cache (the model's dtype)
    config: Any

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "config"}


def describe_model_facts(model: PreTrainedModel) -> ModelFacts:
    import torch

    head = model.get_output_embeddings()
    embed = model.get_input_embeddings()
    head_weight = head.weight if head is not None else None
    linear = sum(m.weight.numel() for m in model.modules()
                 if isinstance(m, torch.nn.Linear) and m is not head)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if embed is not None and embed.weight is not head_weight:
        weight_bytes -= embed.weight.numel() * embed.weight.element_size()  # type: ignore[operator]
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") \
        else model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return ModelFacts(
        weight_bytes=weight_bytes, linear_params=linear,
        head_params=0 if head_weight is None else head_weight.numel(),
        n_layers=config.num_hidden_layers, attention_dim=heads * head_dim,
        bytes_per_element=next(model.parameters()).element_size(), config=config)


def compute_point_efficiency(point: PointResult, facts: ModelFacts, calibration: Calibration,
                             prompt_tokens: int) -> dict[str, Any]:
    """Decode MBU (median step) and prefill MFU of one measured point, with the inputs.

    Decode step i (0-based) after a prompt of T tokens attends T+1+i positions, so its KV
    read is the cache at that length; the bytes used are the mean over the timed steps.
    """
    if point.prefill_s is None or not point.decode_step_s:
        return {}
    batch, steps = point.batch_size, len(point.decode_step_s)
    kv = [compute_kv_cache_bytes(describe_cache_layers(facts.config, batch, prompt_tokens + 1 + i),
                                 facts.bytes_per_element) for i in range(steps)]
    bytes_per_step = compute_decode_bytes(facts.weight_bytes, round(statistics.fmean(kv)))
    step_s = statistics.median(point.decode_step_s)
    flops = compute_prefill_flops(facts.linear_params, batch, prompt_tokens, facts.n_layers,
                                  facts.attention_dim, facts.head_params, head_positions=1)
    return {
        "decode_step_s_median": step_s,
        "decode_bytes_per_step": bytes_per_step,
        "decode_kv_bytes_mean": round(statistics.fmean(kv)),
        "decode_bytes_per_s": bytes_per_step / step_s,
        "mbu": compute_mbu(bytes_per_step, step_s, calibration.bytes_per_s),
        "prefill_s": point.prefill_s,
        "prefill_flops": flops,
        "prefill_flops_per_s": flops / point.prefill_s,
        "mfu": compute_mfu(flops, point.prefill_s, calibration.flops_per_s),
    }

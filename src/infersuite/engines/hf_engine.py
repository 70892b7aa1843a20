"""The ``hf`` engine: a transformers model in process (eager or SDPA attention).

Arguments: ``attention=eager|sdpa`` runs every call with that attention implementation
(default: the model's own). ``slowdown=F`` (a fraction, e.g. 0.05) plants a known
slowdown for proving a regression gate: after each generation step it spins F times that
step's own duration, and after each other call (prefill, decode step, forward pass) F times
that call's, so every call takes about (1 + F) times as long. With float32
on the CPU and no arguments this engine is the reference that judges every other engine.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from infersuite.engines import hf
from infersuite.engines.base import (
    Engine,
    EngineContext,
    EngineError,
    EngineSpec,
    parse_slowdown,
)

if TYPE_CHECKING:
    import torch

ATTENTION = ("eager", "sdpa")


class HFEngine(Engine):
    name = "hf"
    capabilities = frozenset({"logits", "padded_batch", "greedy", "cache", "kv_layout",
                              "sampling", "stream", "transformers"})

    def __init__(self, spec: EngineSpec, model: Any, tokenizer: Any | None = None,
                 attention: str | None = None, slowdown: float = 0.0) -> None:
        super().__init__(spec, int(model.config.vocab_size), hf.pad_id_of(model),
                         hf.eos_ids(model), tokenizer, str(model.dtype).removeprefix("torch."))
        self.model = model
        self.attention = attention
        self.slowdown = slowdown
        self.device = str(next(model.parameters()).device)

    def _step_hooks(self, on_token: Callable[[], None] | None) -> dict[str, Any]:
        """generate()'s per-step logits processor: the token marks and the planted
        slowdown (``slowdown=``), which runs after the mark so it lands in the step after."""
        from infersuite.measure.hooks import token_mark_hooks

        return token_mark_hooks(on_token, self.slowdown)

    def describe(self) -> dict[str, str]:
        import transformers

        return {"engine": str(self.spec), "transformers": transformers.__version__,
                "attention": self.attention or str(self.model.config._attn_implementation)}

    @contextlib.contextmanager
    def _attention(self) -> Iterator[None]:
        """Run under the requested attention implementation; the shared model is restored."""
        original = self.model.config._attn_implementation
        if self.attention is None or self.attention == original:
            yield
            return
        self.model.set_attn_implementation(self.attention)
        try:
            yield
        finally:
            self.model.set_attn_implementation(original)

    @contextlib.contextmanager
    def _planted(self) -> Iterator[None]:
        """``slowdown=``: a call outside generate() then takes (1 + slowdown) times its own
        time (generate() is slowed per step, by its logits processor)."""
        if not self.slowdown:
            yield
            return
        import time

        from infersuite.measure.hooks import spin

        start = time.perf_counter()
        yield
        spin(self.slowdown * (time.perf_counter() - start))

    def _on_device(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        return [t.to(self.device) for t in tensors]

    def forward_logits(self, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor) -> torch.Tensor:
        ids, mask = self._on_device(input_ids, attention_mask)
        with self._planted(), self._attention():
            return hf.forward_logits(self.model, ids, mask).cpu()

    def generate_kwargs(self) -> dict[str, Any]:
        """Extra keywords for every ``generate`` call (none: transformers' defaults)."""
        return {}

    def generate_greedy(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        n_new: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self._on_device(input_ids, attention_mask)
        with self._attention():
            tokens, logits = hf.generate_greedy(self.model, ids, mask, n_new,
                                                **self._step_hooks(None),
                                                **self.generate_kwargs())
        return tokens.cpu(), logits.cpu()

    def prefill(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, Any]:
        ids, mask = self._on_device(input_ids, attention_mask)
        with self._planted(), self._attention():
            logits, cache = hf.prefill(self.model, ids, mask)
            logits = logits.cpu()
        return logits, cache

    def decode_step(self, state: Any, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
        ids, mask = self._on_device(input_ids, attention_mask)
        with self._planted(), self._attention():
            return hf.decode_step(self.model, state, ids, mask).cpu()

    def fork(self, state: Any) -> Any:
        return copy.deepcopy(state)  # forward mutates a DynamicCache in place

    def cache_tensors(self, state: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(layer.keys, layer.values) for layer in state.layers]

    def sample(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_new: int, *,
               seed: int, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None) -> torch.Tensor:
        import torch

        torch.manual_seed(seed)
        ids, mask = self._on_device(input_ids, attention_mask)
        with self._attention(), torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                top_k=top_k if top_k is not None else 0, top_p=top_p if top_p is not None else 1.0,
                max_new_tokens=n_new, min_new_tokens=n_new, pad_token_id=self.pad_id)
        return out[:, ids.shape[1]:].cpu()

    def generate_stream(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        n_new: int, on_token: Callable[[], None] | None) -> torch.Tensor:
        """transformers' own generate(); a logits processor calls `on_token` right after
        each step's forward pass, on every device (measure/hooks.py). Without `on_token`
        nothing is hooked in (the uninstrumented twin)."""
        import torch

        hooks = self._step_hooks(on_token)
        ids, mask = self._on_device(input_ids, attention_mask)
        with self._attention(), torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=n_new,
                min_new_tokens=n_new, pad_token_id=self.pad_id, use_cache=True, **hooks,
                **self.generate_kwargs())
        return out[:, ids.shape[1]:]


def parse_attention(spec: EngineSpec) -> str | None:
    """The ``attention=`` argument of an hf-family engine, checked."""
    attention = spec.kwargs.get("attention")
    if attention is not None and attention not in ATTENTION:
        raise EngineError(f"engine {spec}: attention={attention!r}; "
                          f"expected one of {', '.join(ATTENTION)}")
    return attention


def create(context: EngineContext) -> HFEngine:
    unknown = sorted(set(context.spec.kwargs) - {"attention", "slowdown"})
    if unknown:
        raise EngineError(f"engine {context.spec}: unknown argument(s) {unknown}; "
                          "the hf engine takes attention=eager|sdpa and slowdown=F")
    attention = parse_attention(context.spec)
    engine = HFEngine(context.spec, context.model, context.tokenizer, attention,
                      parse_slowdown(context.spec))
    if attention is not None:
        # Modules that drive the transformers model directly would run it with its own
        # attention, not this engine's: they skip instead of running under a wrong id.
        engine.capabilities = engine.capabilities - {"transformers"}
        engine.limitations["transformers"] = (
            f"attention={attention} applies to this engine's own calls, not to checks that "
            "drive the transformers model directly")
    return engine

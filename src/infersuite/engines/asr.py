"""Speech recognition engines: an encoder step and a decoder with a cache, behind one protocol.

An encoder-decoder model (Whisper's shape) turns log-mel features [batch, mels, frames]
into encoder states once, then decodes tokens with two caches: the decoder's own keys and
values (growing by one position per step) and the cross-attention keys and values of the
encoder states (computed once, reused every step). The protocol exposes what the checks
need to judge each part on its own:

- ``encode(features)`` -> encoder states [batch, positions, width];
- ``decoder_logits(states, ids)`` -> logits [batch, len(ids), vocab] by a full recompute
  (no cache): the answer a cached decoder must reproduce;
- ``decode_greedy(states, prompt, n_new, on_token)`` -> (tokens [batch, n_new], step
  logits [batch, n_new, vocab]): the engine's own cached decoding, end of text never
  chosen so that every run has the same length; ``on_token()`` after each token;
- ``generate_greedy(features, prompt, n_new)``: ``encode`` then ``decode_greedy``.

``hf`` runs transformers' WhisperForConditionalGeneration in float32: the reference the
other speech engines are judged against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from infersuite.engines.base import EngineSpec, naive_greedy

if TYPE_CHECKING:
    import torch

CAPABILITIES = frozenset({"encoder", "cached_decoder", "batch"})


class AsrEngine:
    """What a speech engine provides; adapters subclass it."""

    name = "asr"
    capabilities: frozenset[str] = CAPABILITIES
    precision = "float32"  # what the reference rule judges
    compute_dtype = "float32"

    def __init__(self, spec: EngineSpec, config: Any) -> None:
        self.spec = spec
        self.config = config
        self.start_ids = [int(config.decoder_start_token_id)]
        eos = config.eos_token_id
        self.banned = [int(eos)] if eos is not None else []
        self.limitations: dict[str, str] = {}

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decoder_logits(self, states: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode_greedy(self, states: torch.Tensor, prompt: torch.Tensor, n_new: int,
                      on_token: Callable[[], None] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def generate_greedy(self, features: torch.Tensor, prompt: torch.Tensor,
                        n_new: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode_greedy(self.encode(features), prompt, n_new)

    def describe(self) -> dict[str, str]:
        return {"engine": str(self.spec)}

    def prompt(self, batch: int) -> torch.Tensor:
        """The decoder's first tokens for `batch` rows: the start-of-transcript token."""
        import torch

        return torch.tensor([self.start_ids] * batch, dtype=torch.long)


def naive_asr_greedy(engine: AsrEngine, features: torch.Tensor, prompt: torch.Tensor,
                     n_new: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding without any cache: the encoder once, then the decoder over the
    whole token sequence at every step (engines/base.naive_greedy)."""
    import torch

    states = engine.encode(features)
    return naive_greedy(lambda ids, _mask: engine.decoder_logits(states, ids), prompt,
                        torch.ones_like(prompt), n_new, engine.banned)


def free_greedy_rows(tokens: torch.Tensor, step_logits: torch.Tensor, eos: int | None
                     ) -> list[list[int]]:
    """Each row's tokens up to where free greedy decoding would stop. Engines run a fixed
    number of steps with end-of-text never chosen, and their step logits are raw, so free
    greedy stops at the first step whose argmax is `eos`; before it, the fixed-length run
    chose what free greedy would have."""
    rows = tokens.tolist()
    if eos is None:
        return rows
    cut = []
    for row, argmax in zip(rows, step_logits.argmax(-1).tolist(), strict=True):
        cut.append(row[:argmax.index(eos)] if eos in argmax else row)
    return cut


class HfAsrEngine(AsrEngine):
    """transformers' Whisper in process: the encoder, then the decoder stepped on an
    EncoderDecoderCache (self-attention cache growing, cross-attention cache filled on the
    first step and reused). ``slowdown=F`` plants a known slowdown, as the text hf engine's
    does: every encoder call and decoder step then spins F times its own time."""

    name = "hf"

    def __init__(self, spec: EngineSpec, model: Any, slowdown: float = 0.0) -> None:
        super().__init__(spec, model.config)
        self.model = model
        self.slowdown = slowdown

    def _planted(self, start: float) -> None:
        if self.slowdown:
            import time

            from infersuite.measure.hooks import spin

            spin(self.slowdown * (time.perf_counter() - start))

    def describe(self) -> dict[str, str]:
        import transformers

        return {"engine": str(self.spec), "transformers": transformers.__version__}

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        import time

        import torch

        start = time.perf_counter()
        with torch.inference_mode():
            states = self.model.model.encoder(features).last_hidden_state
        self._planted(start)
        return states

    def decoder_logits(self, states: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            return self.model(encoder_outputs=(states,), decoder_input_ids=ids,
                              use_cache=False).logits

    def new_cache(self) -> Any:
        from transformers import DynamicCache, EncoderDecoderCache

        return EncoderDecoderCache(DynamicCache(config=self.model.config),
                                   DynamicCache(config=self.model.config))

    def step(self, states: torch.Tensor, ids: torch.Tensor, cache: Any) -> torch.Tensor:
        """Logits of the new tokens `ids` on top of `cache` (filled in place)."""
        import time

        import torch

        from infersuite.engines.hf import cache_kwargs

        start = time.perf_counter()
        with torch.inference_mode():
            logits = self.model(encoder_outputs=(states,), decoder_input_ids=ids,
                                use_cache=True, **cache_kwargs(self.model, cache)).logits
        self._planted(start)
        return logits

    def decode_greedy(self, states: torch.Tensor, prompt: torch.Tensor, n_new: int,
                      on_token: Callable[[], None] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        cache, ids = self.new_cache(), prompt
        tokens, step_logits = [], []
        for _ in range(n_new):
            logits = self.step(states, ids, cache)[:, -1, :]
            choosable = logits.clone()
            if self.banned:
                choosable[:, self.banned] = float("-inf")
            ids = choosable.argmax(-1, keepdim=True)
            if on_token is not None:
                on_token()
            tokens.append(ids[:, 0])
            step_logits.append(logits)
        return torch.stack(tokens, 1), torch.stack(step_logits, 1)


def unsupported_arguments(spec: EngineSpec, taken: set[str]) -> None:
    """EngineUnsupported (the speech case skips, saying why) for arguments the speech
    adapter does not take: they may be the text engine's own (attention=, weights=)."""
    from infersuite.engines.base import EngineUnsupported

    other = sorted(set(spec.kwargs) - taken)
    if other:
        takes = ", ".join(f"{name}=" for name in sorted(taken)) or "no arguments"
        raise EngineUnsupported(f"engine {spec}: the speech adapter does not take "
                                f"{', '.join(other)} (it takes {takes})")


def create_hf(spec: EngineSpec, model: Any) -> AsrEngine:
    from infersuite.engines.base import parse_slowdown

    unsupported_arguments(spec, {"slowdown"})
    return HfAsrEngine(spec, model, parse_slowdown(spec))


def _create_onnxruntime(spec: EngineSpec, model: Any) -> AsrEngine:
    from infersuite.engines.asr_onnx import create_onnxruntime

    return create_onnxruntime(spec, model)


def _create_openvino(spec: EngineSpec, model: Any) -> AsrEngine:
    from infersuite.engines.asr_onnx import create_openvino

    return create_openvino(spec, model)


# engine name -> factory(spec, float32 transformers model); the other engines have no speech
# adapter yet, and their speech cases skip saying so.
ASR_ENGINES = {"hf": create_hf, "onnxruntime": _create_onnxruntime,
               "openvino": _create_openvino}

"""The ``hf-compiled`` engine: transformers with a static KV cache and ``torch.compile``.

The low-latency decode path: ``generate(cache_implementation="static")`` with a compile
config, so transformers compiles the model's forward for the decode steps (on every
device: transformers compiles automatically only on accelerators, so the config asks for
the CPU too). Arguments: ``mode=default|reduce-overhead|max-autotune`` (torch.compile's
mode; default ``default`` on the CPU, ``reduce-overhead`` (CUDA graphs) on CUDA) and the
hf engine's ``attention=``. The first call of each new shape compiles (tens of seconds on
a CPU); ``describe()`` says how many graphs were compiled, and a run in which transformers
compiled nothing fails instead of silently timing the eager path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from infersuite.engines.base import EngineContext, EngineError
from infersuite.engines.hf_engine import HFEngine, parse_attention

if TYPE_CHECKING:
    import torch

MODES = ("default", "reduce-overhead", "max-autotune")


class HFCompiledEngine(HFEngine):
    name = "hf-compiled"
    # Only generate()'s decode steps are compiled: a plain forward pass would run the same
    # eager model as the reference, so the engine does not offer one to be judged.
    capabilities = frozenset({"greedy", "stream"})

    def __init__(self, *args: Any, mode: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode = mode
        self.graphs_before = compiled_graphs()
        self.limitations = dict.fromkeys(
            ("logits", "padded_batch"), "outside generate() the model runs eager, the same "
            "code as the reference; only generate()'s decode steps are compiled")

    def generate_kwargs(self) -> dict[str, Any]:
        from transformers import CompileConfig

        config = CompileConfig(mode=self.mode)
        config._compile_all_devices = True  # type: ignore[assignment]  # else accelerators only
        return {"cache_implementation": "static", "compile_config": config}

    def generate_greedy(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        n_new: int) -> tuple[torch.Tensor, torch.Tensor]:
        result = super().generate_greedy(input_ids, attention_mask, n_new)
        self._check_compiled()
        return result

    def generate_stream(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        n_new: int, on_token: Callable[[], None] | None) -> torch.Tensor:
        result = super().generate_stream(input_ids, attention_mask, n_new, on_token)
        self._check_compiled()
        return result

    def _check_compiled(self) -> None:
        """transformers keeps the torch.compile'd forward it decoded with on the model
        (``_compiled_call``); without it, generate() ran the eager path."""
        if getattr(self.model, "_compiled_call", None) is None:
            raise EngineError(f"engine {self.spec}: generate() with a static cache compiled "
                              "no graph (this transformers did not take the compile config); "
                              "the run would time the eager path")

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "cache": "static", "compile_mode": self.mode,
                "compiled_graphs": str(compiled_graphs() - self.graphs_before)}


def compiled_graphs() -> int:
    """Graphs torch.compile has produced in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def create(context: EngineContext) -> HFCompiledEngine:
    args = context.spec.kwargs
    unknown = sorted(set(args) - {"attention", "mode"})
    if unknown:
        raise EngineError(f"engine {context.spec}: unknown argument(s) {unknown}; "
                          f"hf-compiled takes mode={'|'.join(MODES)} and attention=eager|sdpa")
    default_mode = "reduce-overhead" if context.device.startswith("cuda") else "default"
    mode = args.get("mode", default_mode)
    if mode not in MODES:
        raise EngineError(f"engine {context.spec}: mode={mode!r}; expected one of "
                          f"{', '.join(MODES)}")
    return HFCompiledEngine(context.spec, context.model, context.tokenizer,
                            parse_attention(context.spec), mode=mode)

"""The engine protocol: what a runtime offers to be put under test, and how engines are found.

An engine turns token ids into logits and tokens. Every engine answers the same calls on
left-padded batches of token ids (``input_ids``/``attention_mask``, int64 tensors [B, T])
and returns float32 CPU tensors, so one comparison helper judges them all. What an engine
can do beyond the minimum is declared in ``capabilities``; a test that needs a missing one
skips and names the engine and the capability (``require``).

Engines are built from the case's transformers model (the reference weights), so every
engine runs the same weights: the ``hf`` engine uses it directly, others export or convert
it. Third parties register a factory under the ``infersuite.engines`` entry-point group::

    [project.entry-points."infersuite.engines"]
    my-runtime = "my_package.engine:create"   # create(EngineContext) -> Engine
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

ENTRY_POINT_GROUP = "infersuite.engines"

CAPABILITIES = {
    "logits": "full-sequence logits of one unpadded prompt",
    "padded_batch": "logits and greedy generation for a left-padded batch with a mask",
    "greedy": "fixed-length greedy generation (EOS suppressed) with each step's logits",
    "cache": "prefill, decode_step and fork on the engine's own KV cache",
    "kv_layout": "the cache's tensors per layer, (batch, kv_heads, seq, head_dim)",
    "sampling": "seeded temperature / top-k / top-p sampling",
    "stream": "a callback as each generated token becomes available (for timing)",
    "endpoint": "a server's OpenAI-compatible HTTP API (the endpoint checks)",
    "transformers": "the underlying transformers model, for checks of transformers' own "
                    "APIs (its continuous batching manager, generate() options)",
}
# Engines that are servers behind the OpenAI-compatible API: the endpoint modules run them.
SERVING_ENGINES = ("openai", "llama.cpp-server", "vllm")
# The optional Python packages (import names) each built-in engine needs, and how to get
# them. The suite collects and runs without them: an engine whose packages are absent skips
# its cases with this reason, and naming it with --infer-engine is a usage error.
ENGINE_REQUIREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "onnxruntime": (("onnx", "onnxruntime"), "pip install 'infersuite[formats]'"),
    "llama.cpp": (("llama_cpp", "gguf"), "pip install 'infersuite[formats,server]'"),
    "openvino": (("openvino", "onnx"), "pip install 'infersuite[formats,openvino]'"),
    "llama.cpp-server": (("llama_cpp", "gguf", "fastapi", "uvicorn", "sse_starlette"),
                         "pip install 'infersuite[formats,server]'"),
}
_SPEC_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?::(?P<args>.*))?$")


class EngineError(RuntimeError):
    """An engine that cannot be built or that failed; the message says which and why."""


class EngineUnsupported(EngineError):
    """The engine cannot run this case (a dtype, device or model it does not support)."""


def find_missing_requirements(name: str) -> str | None:
    """Why engine `name` cannot run here (its optional packages are not installed), or
    None when it can; engines without a ENGINE_REQUIREMENTS entry always can."""
    import importlib.util

    if name not in ENGINE_REQUIREMENTS:
        return None
    modules, install = ENGINE_REQUIREMENTS[name]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (f"engine {name} needs the Python package(s) {', '.join(missing)}, not installed "
            f"here; {install} (or `make install`)")


def require_installed(spec: EngineSpec) -> None:
    """EngineUnsupported (the case skips, with the reason) when `spec`'s packages are absent."""
    reason = find_missing_requirements(spec.name)
    if reason is not None:
        raise EngineUnsupported(reason)


@dataclass(frozen=True)
class EngineSpec:
    """An engine name and its arguments, as given to ``--infer-engine NAME[:k=v,...]``."""

    name: str
    args: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        """The test-id part: ``onnxruntime``, ``llama.cpp-kv=f32``."""
        return "-".join([self.name, *(f"{k}={v}" for k, v in self.args)])

    @property
    def kwargs(self) -> dict[str, str]:
        return dict(self.args)

    def __str__(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.args)
        return f"{self.name}:{args}" if args else self.name


def parse_engine_spec(text: str) -> EngineSpec:
    """``NAME`` or ``NAME:key=value,key=value`` (lm-evaluation-harness's model_args style)."""
    match = _SPEC_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r}: expected NAME or NAME:key=value,... e.g. "
                         "llama.cpp:kv=f32")
    args = []
    for part in filter(None, (match.group("args") or "").split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{text!r}: engine argument {part!r} is not key=value")
        args.append((key.strip(), value.strip()))
    return EngineSpec(match.group("name"), tuple(args))


@dataclass
class EngineContext:
    """What a factory gets: the reference model and where to put converted files."""

    spec: EngineSpec
    model: Any  # transformers PreTrainedModel at the case's dtype and device
    tokenizer: Any | None
    model_name: str
    dtype: str
    device: str
    workdir: Path
    reference_fp32: Callable[[], Any] = field(repr=False, default=lambda: None)  # fp32 CPU model
    # Run-wide settings an engine may need (the serving engines: EndpointOptions under
    # "endpoint", and "models_named": whether the user named the model under test).
    options: Mapping[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """A runtime under test. Subclasses set ``name`` and ``capabilities`` and implement
    the calls their capabilities promise; the defaults raise EngineError."""

    name: str = "engine"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, spec: EngineSpec, vocab_size: int, pad_id: int, eos_ids: list[int],
                 tokenizer: Any | None = None, precision: str = "float32",
                 compute_dtype: str | None = None) -> None:
        self.spec = spec
        # The arithmetic the reference rule judges: float32/float16/bfloat16, or a
        # quantized weight format (F16, Q8_0, Q4_0) judged by KL and top-1 agreement.
        self.precision = precision
        # The float type its arithmetic runs in: the dtype whose logits tolerance its own
        # consistency checks (padded vs solo, cached vs recompute) use.
        self.compute_dtype = compute_dtype or (
            precision if precision in ("float32", "float16", "bfloat16") else "float32")
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.eos_ids = eos_ids
        self.tokenizer = tokenizer
        self.device = "cpu"  # where the engine computes (its timing clock follows it)
        # capability -> why this instance lacks it (e.g. a graph that cannot be exported)
        self.limitations: dict[str, str] = {}

    def describe(self) -> dict[str, str]:
        """What the report records about the engine (name, version, arguments)."""
        return {"engine": str(self.spec)}

    def close(self) -> None:  # noqa: B027 - optional hook, most engines hold nothing
        """Release what the engine holds (processes, sessions); called at session end."""

    @abstractmethod
    def forward_logits(self, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, V] (float32, CPU) at every position; padded positions undefined."""

    def generate_greedy(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        n_new: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens [B, n_new], step logits [B, n_new, V]) of the engine's own cached greedy
        decoding, EOS suppressed so the length is fixed."""
        raise self._missing("greedy")

    def prefill(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """(logits [B, 1, V] of the prompt's last position, cache state) for the prompt:
        only the last position's logits are needed, and computing all T of them costs
        T·V per row (262k-token vocabularies make that the largest tensor of prefill)."""
        raise self._missing("cache")

    def decode_step(self, state: Any, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits [B, n, V] of n new tokens fed on top of `state` (which advances);
        `attention_mask` covers past and new tokens."""
        raise self._missing("cache")

    def fork(self, state: Any) -> Any:
        """An independent copy of a cache state."""
        raise self._missing("cache")

    def cache_tensors(self, state: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(keys, values) per layer of a cache state."""
        raise self._missing("kv_layout")

    def sample(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_new: int, *,
               seed: int, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None) -> torch.Tensor:
        """Tokens [B, n_new] sampled with the engine's own sampler, seeded."""
        raise self._missing("sampling")

    def generate_stream(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        n_new: int, on_token: Callable[[], None] | None) -> torch.Tensor:
        """Greedy tokens [B, n_new] (EOS suppressed); `on_token()` is called as each step's
        token becomes available (None: no callback, the uninstrumented run)."""
        raise self._missing("stream")

    def _missing(self, capability: str) -> EngineError:
        return EngineError(f"engine {self.spec}: {capability} is not implemented "
                           f"({CAPABILITIES.get(capability, capability)})")


Factory = Callable[[EngineContext], Engine]


def naive_greedy(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 input_ids: torch.Tensor, attention_mask: torch.Tensor, n_new: int,
                 banned: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding by full recompute: `forward(ids, mask)` over the whole sequence at
    every step, the argmax of the last position appended (ids in `banned`, the EOS ids,
    never chosen, so the length is fixed). Returns (tokens [B, n_new], raw step logits
    [B, n_new, V]): the cache-free answer a cached decoder must reproduce."""
    import torch

    ids, mask = input_ids, attention_mask
    tokens, step_logits = [], []
    for _ in range(n_new):
        logits = forward(ids, mask)[:, -1, :]
        choosable = logits.clone()
        if banned:
            choosable[..., list(banned)] = float("-inf")
        next_token = choosable.argmax(-1).to(ids.device)
        tokens.append(next_token)
        step_logits.append(logits)
        ids = torch.cat([ids, next_token[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return torch.stack(tokens, 1), torch.stack(step_logits, 1)


def builtin_engines() -> dict[str, str]:
    """Engines shipped with infersuite: name -> "module:factory"."""
    return {"hf": "infersuite.engines.hf_engine:create",
            "hf-compiled": "infersuite.engines.hf_compiled:create",
            "onnxruntime": "infersuite.engines.ort_engine:create",
            "llama.cpp": "infersuite.engines.llamacpp_engine:create",
            "openai": "infersuite.engines.openai_engine:create",
            "llama.cpp-server": "infersuite.engines.openai_engine:create_llamacpp_server",
            "vllm": "infersuite.engines.openai_engine:create_vllm",
            "env": "infersuite.engines.env_engine:create",
            "openvino": "infersuite.engines.openvino_engine:create"}


def available_engines() -> dict[str, str]:
    """Built-in engines plus those registered under the ``infersuite.engines`` group."""
    found = builtin_engines()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def load_factory(name: str, registry: Mapping[str, str] | None = None) -> Factory:
    """The factory registered under `name`; EngineError lists the known engines."""
    import importlib

    registry = available_engines() if registry is None else registry
    if name not in registry:
        raise EngineError(f"engine {name!r} is unknown; known engines: "
                          f"{', '.join(sorted(registry))} (third-party engines register "
                          f"under the {ENTRY_POINT_GROUP!r} entry-point group)")
    module_name, _, attribute = registry[name].partition(":")
    factory = getattr(importlib.import_module(module_name), attribute or "create")
    return factory


MAX_SLOWDOWN = 3.0  # a planted slowdown of up to 3x the step's own time (4x as slow)


def parse_slowdown(spec: EngineSpec) -> float:
    """The ``slowdown=`` argument of an engine that can plant one (hf, the speech hf
    adapter, the servers' clients): a fraction in [0, MAX_SLOWDOWN]."""
    text = spec.kwargs.get("slowdown", "0")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= MAX_SLOWDOWN:
        raise EngineError(f"engine {spec}: slowdown={text!r}; expected a fraction in "
                          f"[0, {MAX_SLOWDOWN:g}], "
                          "e.g. slowdown=0.05 for a planted 5% slowdown")
    return value

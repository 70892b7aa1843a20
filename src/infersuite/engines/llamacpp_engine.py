"""The ``llama.cpp`` engine: the case's model as GGUF, run by llama-cpp-python on the CPU.

The float32 reference weights are written to GGUF (with the tokenizer's vocabulary) in
the case's work directory and loaded with ``llama_cpp.Llama``. Arguments:

- ``quant=F32|F16|Q8_0|Q4_0``: the GGUF's weight type (default F32: comparable with the
  float32 reference at fp32 tolerance);
- ``kv=f32|f16``: the KV cache's ``type_k``/``type_v`` (default f32; llama.cpp's own
  default is f16);
- ``flash_attn=on|off``: llama.cpp's flash-attention kernels (default off, as in
  llama-cpp-python; llama.cpp's own default is auto);
- ``threads=N`` (default 2), ``n_ctx=N`` (default the model's context, at most 512);
- ``isolate=on|off``: run llama.cpp in a worker process (default on; see engines.worker),
  so a crash in native code fails its own cases only.

llama.cpp has no padding masks: each sequence runs on its own (no ``padded_batch``); a
batch of unpadded rows is run row by row. Only case dtype float32 on the CPU: the GGUF's
precision is ``quant``, not the case dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.engines.base import (
    Engine,
    EngineContext,
    EngineError,
    EngineSpec,
    EngineUnsupported,
    require_installed,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

QUANTS = ("F32", "F16", "Q8_0", "Q4_0")
KV_TYPES = {"f32": 0, "f16": 1}  # llama_cpp.GGML_TYPE_F32 / GGML_TYPE_F16
SWITCH = {"on": True, "off": False}
DEFAULTS = {"quant": "F32", "kv": "f32", "flash_attn": "off", "threads": "2",
            "n_ctx": "", "isolate": "on"}
MAX_DEFAULT_CTX = 512
SEED = 0
LIMITATIONS = {
    "padded_batch": "llama.cpp has no padding masks; each sequence runs on its own",
    "kv_layout": "llama-cpp-python exposes the KV cache as opaque state snapshots only",
}


@dataclass(frozen=True)
class LlamaCppSettings:
    """Everything the worker needs to open the model (picklable)."""

    spec: EngineSpec
    gguf_path: Path
    quant: str
    kv: str
    flash_attn: bool
    threads: int
    n_ctx: int
    vocab_size: int
    pad_id: int
    eos_ids: tuple[int, ...]


def precision_of(settings: LlamaCppSettings) -> str:
    """The reference rule's precision: the GGUF weight type when quantized (F16 too);
    float32 weights with an f16 KV cache, or flash attention (which casts K and V to f16
    on the CPU), compute attention in float16."""
    if settings.quant != "F32":
        return settings.quant
    return "float16" if settings.kv == "f16" or settings.flash_attn else "float32"


def compute_dtype_of(settings: LlamaCppSettings) -> str:
    """float16 where llama.cpp computes in f16 (an f16 KV cache, flash attention, F16
    weights); float32 otherwise (Q8_0/Q4_0 dequantize into f32 accumulations)."""
    f16 = settings.kv == "f16" or settings.flash_attn or settings.quant == "F16"
    return "float16" if f16 else "float32"


class LlamaCppEngine(Engine):
    name = "llama.cpp"
    capabilities = frozenset({"logits", "greedy", "cache", "stream", "sampling"})

    def __init__(self, settings: LlamaCppSettings) -> None:
        import llama_cpp

        super().__init__(settings.spec, settings.vocab_size, settings.pad_id,
                         list(settings.eos_ids), precision=precision_of(settings),
                         compute_dtype=compute_dtype_of(settings))
        self.settings = settings
        self.limitations = dict(LIMITATIONS)
        kv_type = KV_TYPES[settings.kv]
        self.llm = llama_cpp.Llama(
            model_path=str(settings.gguf_path), n_ctx=settings.n_ctx, n_batch=settings.n_ctx,
            n_ubatch=settings.n_ctx, n_threads=settings.threads,
            n_threads_batch=settings.threads, seed=SEED, logits_all=True,
            type_k=kv_type, type_v=kv_type, flash_attn=settings.flash_attn, verbose=False)
        if self.llm.n_vocab() != settings.vocab_size:
            raise EngineError(f"engine {self.spec}: llama.cpp reads {self.llm.n_vocab()} "
                              f"tokens from {settings.gguf_path}, the model has "
                              f"{settings.vocab_size}; the GGUF vocabulary is wrong")

    def describe(self) -> dict[str, str]:
        import llama_cpp

        s = self.settings
        return {"engine": str(self.spec), "llama_cpp": llama_cpp.__version__,
                "quant": s.quant, "kv": s.kv, "flash_attn": "on" if s.flash_attn else "off",
                "threads": str(s.threads), "n_ctx": str(s.n_ctx), "precision": self.precision,
                "cpu_features": llama_cpp.llama_print_system_info().decode().strip()}

    def close(self) -> None:
        self.llm.close()

    # -- helpers -----------------------------------------------------------------------

    def _rows(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[list[int]]:
        """The rows as token lists; EngineError if the mask holds padding."""
        padded = int((attention_mask == 0).sum())
        if padded:
            raise EngineError(f"engine {self.spec}: llama.cpp runs unpadded sequences one at "
                              f"a time (no padded_batch); the mask holds {padded} padded "
                              "positions")
        return [[int(t) for t in row] for row in input_ids]

    def _eval(self, tokens: list[int]) -> None:
        if self.llm.n_tokens + len(tokens) > self.settings.n_ctx:
            raise EngineError(f"engine {self.spec}: {self.llm.n_tokens + len(tokens)} tokens "
                              f"exceed n_ctx={self.settings.n_ctx}; pass a larger n_ctx=")
        self.llm.eval(tokens)

    def _logits(self, first: int, count: int) -> np.ndarray:
        return self.llm.scores[first:first + count].copy()

    def _run(self, tokens: list[int]) -> np.ndarray:
        """Logits [T, V] of `tokens` from an empty cache."""
        self.llm.reset()
        self._eval(tokens)
        return self._logits(0, len(tokens))

    # -- the protocol ------------------------------------------------------------------

    def forward_logits(self, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor) -> torch.Tensor:
        import numpy as np
        import torch

        rows = self._rows(input_ids, attention_mask)
        return torch.from_numpy(np.stack([self._run(row) for row in rows]))

    def _greedy_row(self, prompt: list[int], n_new: int,
                    on_token: Callable[[], None] | None = None) -> tuple[list[int], np.ndarray]:
        import numpy as np

        self._run(prompt)
        tokens, steps = [], []
        for step in range(n_new):
            logits = self._logits(self.llm.n_tokens - 1, 1)[0]
            choosable = logits.copy()
            choosable[list(self.eos_ids)] = -np.inf
            tokens.append(int(np.argmax(choosable)))
            if on_token is not None:
                on_token()
            steps.append(logits)
            if step < n_new - 1:
                self._eval(tokens[-1:])
        return tokens, np.stack(steps)

    def generate_greedy(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        n_new: int) -> tuple[torch.Tensor, torch.Tensor]:
        """llama.cpp's KV cache: the prompt once, then one token per step (EOS banned)."""
        import numpy as np
        import torch

        runs = [self._greedy_row(row, n_new) for row in self._rows(input_ids, attention_mask)]
        tokens = torch.tensor([tokens for tokens, _ in runs], dtype=torch.long)
        return tokens, torch.from_numpy(np.stack([logits for _, logits in runs]))

    def generate_stream(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        n_new: int, on_token: Callable[[], None] | None) -> torch.Tensor:
        """The same loop as generate_greedy, calling `on_token` as each token is chosen."""
        import torch

        rows = self._rows(input_ids, attention_mask)
        return torch.tensor([self._greedy_row(row, n_new, on_token)[0] for row in rows],
                            dtype=torch.long)

    def sample(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_new: int, *,
               seed: int, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None) -> torch.Tensor:
        """llama.cpp's own sampler chain (top-k, top-p, temperature, then a seeded draw).
        llama-cpp-python builds the chain afresh for every token from the Llama's seed, so
        each (row, step) gets its own seed, seed + row * n_new + step: independent draws,
        reproducible. min-p, typical-p and the repeat penalty are off: only what was asked
        filters."""
        import torch

        rows = []
        for index, row in enumerate(self._rows(input_ids, attention_mask)):
            self._run(row)
            tokens: list[int] = []
            for step in range(n_new):
                self.llm.set_seed(seed + index * n_new + step)
                tokens.append(int(self.llm.sample(
                    top_k=top_k or 0, top_p=1.0 if top_p is None else top_p, min_p=0.0,
                    typical_p=1.0, temp=temperature, repeat_penalty=1.0)))
                if step < n_new - 1:
                    self._eval(tokens[-1:])
            rows.append(tokens)
        return torch.tensor(rows, dtype=torch.long)

    def prefill(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """State: one llama.cpp state snapshot (KV cache included) per row."""
        import numpy as np
        import torch

        logits, snapshots = [], []
        for row in self._rows(input_ids, attention_mask):
            logits.append(self._run(row)[-1:])
            snapshots.append(self.llm.save_state())
        return torch.from_numpy(np.stack(logits)), snapshots

    def decode_step(self, state: Any, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
        import numpy as np
        import torch

        rows = self._rows(input_ids, attention_mask)
        logits = []
        for index, (snapshot, row) in enumerate(zip(state, rows, strict=True)):
            if attention_mask.shape[1] != snapshot.n_tokens + len(row):
                raise EngineError(f"engine {self.spec}: the mask covers "
                                  f"{attention_mask.shape[1]} positions, the cache holds "
                                  f"{snapshot.n_tokens} + {len(row)} new")
            self.llm.load_state(snapshot)
            self._eval(row)
            logits.append(self._logits(snapshot.n_tokens, len(row)))
            state[index] = self.llm.save_state()  # the state advances; forks keep theirs
        return torch.from_numpy(np.stack(logits))

    def fork(self, state: Any) -> Any:
        return list(state)  # snapshots are replaced, never changed, by decode_step


def open_engine(settings: LlamaCppSettings) -> LlamaCppEngine:
    """Load the written GGUF (in the worker process when isolated)."""
    return LlamaCppEngine(settings)


def _arguments(spec: EngineSpec) -> dict[str, str]:
    args = {**DEFAULTS, **spec.kwargs}
    unknown = sorted(set(spec.kwargs) - set(DEFAULTS))
    problems = [f"unknown argument(s) {unknown}"] if unknown else []
    for key, allowed in (("quant", QUANTS), ("kv", tuple(KV_TYPES)),
                         ("flash_attn", tuple(SWITCH)), ("isolate", tuple(SWITCH))):
        if args[key] not in allowed:
            problems.append(f"{key}={args[key]!r} (expected one of {', '.join(allowed)})")
    for key in ("threads", "n_ctx"):
        if args[key] and not (args[key].isdigit() and int(args[key]) > 0):
            problems.append(f"{key}={args[key]!r} (expected a positive integer)")
    if problems:
        raise EngineError(f"engine {spec}: " + "; ".join(problems) + ". The llama.cpp engine "
                          "takes quant=F32|F16|Q8_0|Q4_0, kv=f32|f16, flash_attn=on|off, "
                          "threads=N, n_ctx=N, isolate=on|off")
    return args


def _check_case(context: EngineContext) -> None:
    if context.device != "cpu":
        raise EngineUnsupported(f"engine {context.spec}: runs on the CPU only (this build of "
                                f"llama-cpp-python); the case asks for {context.device}")
    if context.dtype != "float32":
        raise EngineUnsupported(f"engine {context.spec}: runs case dtype float32 only; the "
                                f"GGUF's precision is the quant= argument, not {context.dtype}")
    if context.tokenizer is None:
        raise EngineUnsupported(f"engine {context.spec}: {context.model_name} has no "
                                "tokenizer, and llama.cpp loads no GGUF without a vocabulary")
    require_installed(context.spec)


def write_model(context: EngineContext, quant: str) -> tuple[Path, Any]:
    """The case's float32 weights as a GGUF of weight type `quant`, with the vocabulary."""
    import gguf

    from infersuite.formats.errors import FormatError
    from infersuite.formats.gguf_io import write_gguf

    model = context.reference_fp32()
    path = context.workdir / f"{context.model_name.replace('/', '_')}-{quant}.gguf"
    try:
        write_gguf(model.state_dict(), model.config, path, gguf.GGMLQuantizationType[quant],
                   tokenizer=context.tokenizer)
    except FormatError as exc:
        raise EngineUnsupported(f"engine {context.spec}: {exc}") from exc
    return path, model


def create(context: EngineContext) -> Engine:
    from infersuite.engines import hf

    args = _arguments(context.spec)
    _check_case(context)
    path, model = write_model(context, args["quant"])
    n_ctx = int(args["n_ctx"] or min(int(model.config.max_position_embeddings),
                                     MAX_DEFAULT_CTX))
    settings = LlamaCppSettings(
        spec=context.spec, gguf_path=path, quant=args["quant"], kv=args["kv"],
        flash_attn=SWITCH[args["flash_attn"]], threads=int(args["threads"]), n_ctx=n_ctx,
        vocab_size=int(model.config.vocab_size), pad_id=hf.pad_id_of(model),
        eos_ids=tuple(hf.eos_ids(model)))
    if not SWITCH[args["isolate"]]:
        return open_engine(settings)
    from infersuite.engines.worker import IsolatedEngine

    return IsolatedEngine(context.spec, "infersuite.engines.llamacpp_engine:open_engine",
                          settings, tokenizer=context.tokenizer, cpus=settings.threads)

"""The ``onnxruntime`` engine: the case's model exported to ONNX and run by onnxruntime.

Two graphs are exported (TorchScript exporter, float32, opset ``onnx_export.OPSET``) into
the case's work directory: a prefill graph (``input_ids``, ``attention_mask`` -> logits)
for forward passes and a decode graph with flat past keys/values for cached decoding.
The cache state is the decode graph's flat list of past arrays (key, value per layer).

Arguments: ``threads=N`` (intra-op threads, default 2) and ``opt=all|basic|none`` (graph
optimization level, default all). float32 only; CUDA needs onnxruntime-gpu.

A model whose decode graph cannot be exported faithfully (``decode_export_limitation``:
sliding-window layers) keeps ``logits`` and ``padded_batch``; ``limitations`` says why
``greedy``, ``cache`` and ``kv_layout`` are missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.engines import hf
from infersuite.engines import onnx as ort_helpers
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

    from infersuite.formats.onnx_export import OnnxExport

OPT_LEVELS = ("all", "basic", "none")
ARGUMENTS = "threads=N (intra-op threads, default 2), opt=all|basic|none (default all)"
DEFAULT_THREADS = 2
DECODE_CAPABILITIES = frozenset({"greedy", "cache", "kv_layout", "stream"})

State = list["np.ndarray"]  # past_key_0, past_value_0, ... as the decode graph takes them


class OrtEngine(Engine):
    name = "onnxruntime"
    capabilities = frozenset({"logits", "padded_batch"}) | DECODE_CAPABILITIES

    def __init__(self, spec: EngineSpec, model: Any, prefill: Any, decoder: Any | None,
                 exports: list[OnnxExport], opt: str, threads: int,
                 limitations: dict[str, str], tokenizer: Any | None = None) -> None:
        super().__init__(spec, int(model.config.vocab_size), hf.pad_id_of(model),
                         hf.eos_ids(model), tokenizer)
        self.prefill_session = prefill
        self.providers: list[str] = list(prefill.get_providers())
        self.decoder = decoder  # ort_helpers.OrtDecoder, or None without a decode graph
        self.exports = exports
        self.export_s = sum(e.export_s for e in exports)
        self.export_warnings: list[str] = []  # the exporter's TracerWarnings, deduplicated
        self.opt, self.threads = opt, threads
        self.limitations = limitations  # capability -> why it is missing
        if decoder is None:
            self.capabilities = self.capabilities - DECODE_CAPABILITIES

    def describe(self) -> dict[str, str]:
        import onnxruntime as ort

        from infersuite.formats.onnx_export import OPSET

        info = {"engine": str(self.spec), "onnxruntime": ort.__version__,
                "providers": ",".join(self.providers),
                "opset": str(OPSET), "graph_optimization": self.opt,
                "threads": str(self.threads), "export_s": f"{self.export_s:.2f}",
                "graphs": ",".join(e.path.name for e in self.exports),
                "export_warnings": str(len(self.export_warnings))}
        if self.limitations:
            info["limitations"] = "; ".join(f"no {c}: {why}"
                                            for c, why in self.limitations.items())
        return info

    def close(self) -> None:
        self.prefill_session = None
        self.decoder = None

    def _require_decoder(self, capability: str) -> Any:
        if self.decoder is None:
            why = self.limitations.get(capability, "no decode graph")
            raise EngineError(f"engine {self.spec}: {capability} is unavailable: {why}")
        return self.decoder

    def forward_logits(self, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor) -> torch.Tensor:
        return ort_helpers.run_prefill(self.prefill_session, input_ids.long(),
                                       attention_mask.long())

    def generate_greedy(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        n_new: int) -> tuple[torch.Tensor, torch.Tensor]:
        decoder = self._require_decoder("greedy")
        tokens, logits = decoder.greedy(input_ids.long(), attention_mask.long(), n_new,
                                        banned=self.eos_ids)
        return tokens, logits

    def generate_stream(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        n_new: int, on_token: Callable[[], None] | None) -> torch.Tensor:
        decoder = self._require_decoder("stream")
        tokens, _ = decoder.greedy(input_ids.long(), attention_mask.long(), n_new,
                                   banned=self.eos_ids, on_token=on_token)
        return tokens

    def prefill(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, State]:
        decoder = self._require_decoder("cache")
        state = decoder.empty_past(input_ids.shape[0])
        return self.decode_step(state, input_ids, attention_mask)[:, -1:], state

    def decode_step(self, state: State, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
        import torch

        decoder = self._require_decoder("cache")
        logits, present = decoder.step(input_ids.long().cpu().numpy(),
                                       attention_mask.long().cpu().numpy(), state)
        state[:] = present  # the state advances in place, as a DynamicCache does
        return torch.from_numpy(logits)

    def fork(self, state: State) -> State:
        self._require_decoder("cache")
        return [array.copy() for array in state]

    def cache_tensors(self, state: State) -> list[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        self._require_decoder("kv_layout")
        return [(torch.from_numpy(state[i]), torch.from_numpy(state[i + 1]))
                for i in range(0, len(state), 2)]


def _parse_args(spec: EngineSpec) -> tuple[int, str]:
    args = spec.kwargs
    unknown = sorted(set(args) - {"threads", "opt"})
    if unknown:
        raise EngineError(f"engine {spec}: unknown argument(s) {unknown}; the onnxruntime "
                          f"engine takes {ARGUMENTS}")
    threads_text = args.get("threads", str(DEFAULT_THREADS))
    if not threads_text.isdigit() or int(threads_text) < 1:
        raise EngineError(f"engine {spec}: threads={threads_text!r}; expected a whole "
                          "number of intra-op threads >= 1, e.g. threads=4")
    opt = args.get("opt", "all")
    if opt not in OPT_LEVELS:
        raise EngineError(f"engine {spec}: opt={opt!r}; expected one of "
                          f"{', '.join(OPT_LEVELS)} (onnxruntime graph optimization level)")
    return int(threads_text), opt


def _check_supported(context: EngineContext) -> list[str]:
    """The execution providers for the case; EngineUnsupported says why it cannot run."""
    if context.dtype != "float32":
        raise EngineUnsupported(f"engine {context.spec}: {context.dtype} is not supported; "
                                "the ONNX exporter here writes float32 graphs only (run it "
                                "with --infer-dtype float32)")
    require_installed(context.spec)
    try:
        return ort_helpers.providers_for(context.device)
    except LookupError as exc:
        raise EngineUnsupported(f"engine {context.spec}: {exc}") from None


def _open(path: Path, providers: list[str], threads: int, opt: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}[opt]
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise EngineError(f"{path}: onnxruntime cannot load the exported graph: {exc}") from exc


def _export(context: EngineContext, model: Any, kind: str) -> tuple[OnnxExport, list[str]]:
    """One graph and the tracer's warnings, kept (``export_warnings``) rather than printed
    with every case's results: they are about transformers' code, not the user's."""
    import warnings

    from infersuite.formats import onnx_export
    from infersuite.formats.errors import FormatError

    export = onnx_export.export_prefill if kind == "prefill" else onnx_export.export_decode
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            done = export(model, context.workdir / f"{kind}.onnx")
        except FormatError as exc:
            raise EngineError(f"engine {context.spec}: {context.model_name}: {exc}") from exc
    return done, [str(w.message) for w in caught]


def _fp32_cpu_model(context: EngineContext) -> Any:
    """The model to export: the exporter's sample inputs live on the CPU."""
    model = context.reference_fp32()
    if model is None and context.device == "cpu":
        model = context.model  # float32 already (checked), and on the CPU
    if model is None:
        raise EngineError(f"engine {context.spec}: the context has no float32 CPU model "
                          "to export (EngineContext.reference_fp32 returned None)")
    return model


def create(context: EngineContext) -> OrtEngine:
    threads, opt = _parse_args(context.spec)
    providers = _check_supported(context)
    from infersuite.formats.onnx_export import decode_export_limitation, kv_layout

    model = _fp32_cpu_model(context)
    context.workdir.mkdir(parents=True, exist_ok=True)
    prefill_export, warned = _export(context, model, "prefill")
    exports = [prefill_export]
    prefill = _open(prefill_export.path, providers, threads, opt)
    limitation = decode_export_limitation(model.config)
    decoder, limitations = None, {}
    if limitation:
        limitations = dict.fromkeys(sorted(DECODE_CAPABILITIES),
                                    f"{context.model_name}: no decode graph: {limitation}")
    else:
        decode_export, more = _export(context, model, "decode")
        exports.append(decode_export)
        warned += more
        _, kv_heads, head_dim = kv_layout(model.config)
        decoder = ort_helpers.OrtDecoder(_open(decode_export.path, providers, threads, opt),
                                         kv_heads, head_dim)
    engine = OrtEngine(context.spec, model, prefill, decoder, exports, opt, threads,
                       limitations, context.tokenizer)
    engine.export_warnings = list(dict.fromkeys(warned))
    return engine

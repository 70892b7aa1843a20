"""Speech engines on exported graphs: ``onnxruntime`` and ``openvino``.

Both run the three graphs of formats/onnx_asr.py (encoder, decoder_init, decoder_step):
onnxruntime's CPU provider directly, OpenVINO after ``openvino.convert_model`` behind a
session with onnxruntime's calling convention (engines/openvino_engine.OvSession). The
decoding loop is the same for both: the encoder once, decoder_init on the prompt (which
also yields the cross-attention keys/values), then decoder_step per token on the grown
self-attention cache. ``decoder_logits`` (no cache) is decoder_init over all tokens.

Arguments: onnxruntime ``threads=N``; openvino ``precision=f32|bf16`` (read back from the
compiled model, as the text engine does) and ``threads=N``; both ``weights=int8``: 8-bit
weights (onnxruntime's dynamic quantization of every graph, activations quantized per call;
OpenVINO's nncf INT8_ASYM weight compression, no calibration data), judged by the word
error rate of the trained speech model (suite/conformance/test_asr_wer.py).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.engines.asr import AsrEngine
from infersuite.engines.base import EngineError, EngineSpec, require_installed

if TYPE_CHECKING:
    import torch

GRAPHS = ("encoder", "decoder_init", "decoder_step")


class GraphAsrEngine(AsrEngine):
    def __init__(self, spec: EngineSpec, config: Any, sessions: dict[str, Any],
                 info: dict[str, str], folder: Any) -> None:
        super().__init__(spec, config)
        self.name = spec.name
        self.sessions, self.info = sessions, info
        self._folder = folder  # the exported graphs live as long as the engine
        self.layers = int(config.decoder_layers)

    def describe(self) -> dict[str, str]:
        return {"engine": str(self.spec), **self.info}

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        import torch

        out = self.sessions["encoder"].run(None, {"input_features": features.numpy()})[0]
        return torch.from_numpy(out)

    def _init(self, states: Any, ids: Any) -> list[Any]:
        return self.sessions["decoder_init"].run(None, {"decoder_input_ids": ids,
                                                        "encoder_hidden_states": states})

    def decoder_logits(self, states: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.from_numpy(self._init(states.numpy(), ids.numpy())[0])

    def decode_greedy(self, states: torch.Tensor, prompt: torch.Tensor, n_new: int,
                      on_token: Callable[[], None] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        import numpy as np
        import torch

        logits, *flat = self._init(states.numpy(), prompt.numpy())
        past, cross = flat[:2 * self.layers], flat[2 * self.layers:]
        names = [f"{p}_{k}_{i}" for p in ("past", "cross") for i in range(self.layers)
                 for k in ("key", "value")]
        tokens, step_logits, ids = [], [], prompt.numpy()
        for step in range(n_new):
            if step:
                feed = dict(zip(names, [*past, *cross], strict=True))
                logits, *past = self.sessions["decoder_step"].run(
                    None, {"decoder_input_ids": ids, **feed})
            last = logits[:, -1, :]
            choosable = last.copy()
            choosable[:, self.banned] = -np.inf
            ids = choosable.argmax(-1)[:, None].astype(np.int64)
            if on_token is not None:
                on_token()
            tokens.append(ids[:, 0])
            step_logits.append(last)
        return torch.from_numpy(np.stack(tokens, 1)), torch.from_numpy(np.stack(step_logits, 1))


def _threads(spec: EngineSpec, allowed: set[str]) -> int:
    from infersuite.engines.asr import unsupported_arguments

    unsupported_arguments(spec, allowed)
    threads = spec.kwargs.get("threads", "2")
    if not threads.isdigit() or int(threads) < 1:
        raise EngineError(f"engine {spec}: threads={threads!r}; expected a whole number >= 1")
    return int(threads)


def _export(model: Any) -> tuple[Any, Path]:
    """The graphs in a temporary folder (kept by the engine), traced on one silent clip."""
    import torch

    from infersuite.formats.onnx_asr import export_asr_graphs

    folder = tempfile.TemporaryDirectory(prefix="infersuite-asr-")
    features = torch.zeros(1, model.config.num_mel_bins, 2 * model.config.max_source_positions)
    with warnings.catch_warnings():  # the tracer's, about transformers' code
        warnings.simplefilter("ignore")
        export_asr_graphs(model, features, Path(folder.name))
    return folder, Path(folder.name)


def _weights(spec: EngineSpec) -> str:
    weights = spec.kwargs.get("weights", "f32")
    if weights not in ("f32", "int8"):
        raise EngineError(f"engine {spec}: weights={weights!r}; expected f32 or int8")
    return weights


def create_onnxruntime(spec: EngineSpec, model: Any) -> AsrEngine:
    threads = _threads(spec, {"threads", "weights"})
    weights = _weights(spec)
    require_installed(spec)
    import onnxruntime as ort

    from infersuite.conformance.accuracy import quantize_dynamic_onnx

    folder, path = _export(model)
    info = {"onnxruntime": ort.__version__, "threads": str(threads)}
    if weights == "int8":
        counts = [quantize_dynamic_onnx(path / f"{name}.onnx", path / f"{name}.int8.onnx")
                  for name in GRAPHS]
        if not all(counts):
            raise EngineError(f"engine {spec}: dynamic quantization left a graph without an "
                              f"integer MatMul ({dict(zip(GRAPHS, counts, strict=True))}): "
                              "nothing would be judged in 8 bits")
        info["int8_matmuls"] = "+".join(map(str, counts))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    suffix = ".int8.onnx" if weights == "int8" else ".onnx"
    sessions = {name: ort.InferenceSession(str(path / f"{name}{suffix}"), options,
                                           providers=["CPUExecutionProvider"])
                for name in GRAPHS}
    engine = GraphAsrEngine(spec, model.config, sessions, info, folder)
    if weights == "int8":
        engine.precision = "int8-dynamic"
    return engine


def create_openvino(spec: EngineSpec, model: Any) -> AsrEngine:
    from infersuite.engines.openvino_engine import (
        PRECISIONS,
        OvSession,
        require_nncf,
        runtime_precisions,
    )

    threads = _threads(spec, {"threads", "precision", "weights"})
    weights = _weights(spec)
    precision = spec.kwargs.get("precision", "f32")
    if precision not in PRECISIONS:
        raise EngineError(f"engine {spec}: precision={precision!r}; expected one of "
                          f"{', '.join(PRECISIONS)}")
    require_installed(spec)
    if weights == "int8":
        require_nncf(spec)
    import openvino

    from infersuite.engines.openvino_engine import (
        compile_for_cpu,
        compress_int8,
        count_int8_constants,
    )

    folder, path = _export(model)
    converted = {name: openvino.convert_model(str(path / f"{name}.onnx")) for name in GRAPHS}
    if weights == "int8":
        converted = {name: compress_int8(graph) for name, graph in converted.items()}
        counts = {name: count_int8_constants(graph) for name, graph in converted.items()}
        if not all(counts.values()):
            raise EngineError(f"engine {spec}: weight compression left a graph without 8-bit "
                              f"weights ({counts}): nothing would be judged in 8 bits")
    compiled = {name: compile_for_cpu(graph, precision, threads)
                for name, graph in converted.items()}
    sessions = {name: OvSession(c) for name, c in compiled.items()}
    hint = compiled["encoder"].get_property("INFERENCE_PRECISION_HINT").to_string()
    engine = GraphAsrEngine(spec, model.config, sessions, {
        "openvino": openvino.__version__, "precision_asked": precision,
        "precision_compiled": hint, "threads": str(threads),
        "runtime_precisions": ", ".join(f"{k}x{v}" for k, v in
                                        runtime_precisions(compiled["encoder"]).items())},
        folder)
    engine.compute_dtype = engine.precision = PRECISIONS.get(hint, hint)
    if weights == "int8":
        engine.info["weights"] = "INT8_ASYM"
        engine.info["int8_weight_constants"] = "+".join(str(counts[n]) for n in GRAPHS)
        engine.precision = "INT8_ASYM"
    return engine

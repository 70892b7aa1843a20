"""The ``openvino`` engine: the case's model converted to OpenVINO and compiled for its CPU.

Two graphs, as the onnxruntime engine has: a full-sequence graph (``input_ids``,
``attention_mask`` -> logits) and a decode graph with flat past keys/values, both converted
with ``openvino.convert_model`` and run through the same decoder loop as onnxruntime's
(engines/onnx.py), behind a session with onnxruntime's calling convention.

``convert_model`` reads the ONNX graphs the onnxruntime engine exports
(formats/onnx_export.py). Its PyTorch frontend, given the same wrapper modules, did not
serve: on llama-tiny (transformers 5.24, OpenVINO 2026.4) the decode module failed to
convert (aten::cat: "Axis -2 out of the tensor rank range") and the converted prefill
graph returned NaN for every position of a left-padded row and logits 0.094 off on an
unpadded one, where the ONNX route agrees with transformers to 5.5e-6 (docs/engines.md).

Arguments:

- ``precision=f32|bf16``: the CPU plugin's ``INFERENCE_PRECISION_HINT``. The precision the
  compiled model actually uses is read back from it (a CPU without bfloat16 support runs
  f32 whatever was asked) and is what the reference rule judges;
- ``weights=f32|int8``: ``int8`` compresses the weights of both graphs with
  ``nncf.compress_weights`` (INT8_ASYM: 8-bit per output channel with a zero point, no
  calibration data). The compiled graph's matrix nodes then report ``u8``, and the engine
  is judged as quantized weights are (mean KL and top-1 agreement, conformance/agreement.py);
- ``activations=f32|int8``: ``int8`` is post-training quantization of both graphs
  (``nncf.quantize``, transformer preset), calibrated on text other than the judged prompts
  (engines/openvino_calibration.py): 8-bit weights and 8-bit inputs to the matrix
  multiplications, judged as 8-bit quantization is (precision ``INT8_PTQ``);
- ``threads=N``: ``INFERENCE_NUM_THREADS`` (default 2).

float32 cases on the CPU only: the conversion starts from the float32 model.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from types import SimpleNamespace
from typing import Any

from infersuite.engines import hf
from infersuite.engines import onnx as ort_helpers
from infersuite.engines.base import (
    EngineContext,
    EngineError,
    EngineSpec,
    EngineUnsupported,
    require_installed,
)
from infersuite.engines.ort_engine import DECODE_CAPABILITIES, OrtEngine, _fp32_cpu_model

PRECISIONS = {"f32": "float32", "bf16": "bfloat16"}
WEIGHTS = ("f32", "int8")
ACTIVATIONS = ("f32", "int8")
ARGUMENTS = ("precision=f32|bf16, weights=f32|int8, activations=f32|int8, threads=N "
             "(default 2)")
DEFAULT_THREADS = 2


class OvSession:
    """A compiled OpenVINO model called the way onnxruntime's InferenceSession is: the
    decoder loop (engines/onnx.py) runs either."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self._inputs = [SimpleNamespace(name=port.get_any_name()) for port in compiled.inputs]
        self._outputs = [port.get_any_name() for port in compiled.outputs]

    def get_inputs(self) -> list[SimpleNamespace]:
        return self._inputs

    def get_providers(self) -> list[str]:
        return ["OpenVINO CPU"]

    def run(self, output_names: list[str] | None, feed: dict[str, Any]) -> list[Any]:
        import numpy as np

        results = self.request.infer(feed)
        names = self._outputs if output_names is None else output_names
        # The request reuses its output buffers: copy, the decoder keeps presents as pasts.
        return [np.array(results[self.compiled.output(name)], copy=True) for name in names]


def runtime_precisions(compiled: Any) -> dict[str, int]:
    """How many matrix-multiplying nodes of the compiled graph run in each precision
    ("FullyConnected:bf16": 15), as the CPU plugin reports it (runtimePrecision)."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        if layer in ("FullyConnected", "MatMul", "ScaledDotProductAttention", "Convolution"):
            counts[f"{layer}:{info['runtimePrecision'].astype(str)}"] += 1
    return dict(sorted(counts.items()))


class OpenVinoEngine(OrtEngine):
    name = "openvino"
    asked, compiled_as, weights, activations = "f32", "f32", "f32", "f32"
    runtime: dict[str, int] = {}  # noqa: RUF012 - replaced per instance by create()

    def describe(self) -> dict[str, str]:
        import openvino

        info = super().describe()
        for key in ("onnxruntime", "providers", "graph_optimization", "opset"):
            info.pop(key, None)
        info.update({"openvino": openvino.__version__, "precision_asked": self.asked,
                     "weights": self.weights, "activations": self.activations,
                     "precision_compiled": self.compiled_as,
                     "runtime_precisions": ", ".join(f"{k}×{v}"
                                                     for k, v in self.runtime.items())})
        return info


def _parse_args(spec: EngineSpec) -> tuple[str, str, str, int]:
    args = spec.kwargs
    unknown = sorted(set(args) - {"precision", "weights", "activations", "threads"})
    if unknown:
        raise EngineError(f"engine {spec}: unknown argument(s) {unknown}; the openvino engine "
                          f"takes {ARGUMENTS}")
    precision = args.get("precision", "f32")
    if precision not in PRECISIONS:
        raise EngineError(f"engine {spec}: precision={precision!r}; expected one of "
                          f"{', '.join(PRECISIONS)} (the CPU's inference precision hint)")
    weights = args.get("weights", "f32")
    if weights not in WEIGHTS:
        raise EngineError(f"engine {spec}: weights={weights!r}; expected one of "
                          f"{', '.join(WEIGHTS)}")
    activations = args.get("activations", "f32")
    if activations not in ACTIVATIONS:
        raise EngineError(f"engine {spec}: activations={activations!r}; expected one of "
                          f"{', '.join(ACTIVATIONS)} (int8: post-training quantization)")
    threads = args.get("threads", str(DEFAULT_THREADS))
    if not threads.isdigit() or int(threads) < 1:
        raise EngineError(f"engine {spec}: threads={threads!r}; expected a whole number >= 1")
    return precision, weights, activations, int(threads)


def _convert(context: EngineContext, model: Any, kind: str, weights: str) -> tuple[Any, Any]:
    """(OpenVINO model, the ONNX export record) of one graph, its weights compressed to
    8 bits when asked."""
    import openvino

    from infersuite.engines.ort_engine import _export

    export, _ = _export(context, model, kind)
    converted = openvino.convert_model(str(export.path))
    if weights == "int8":
        converted = compress_int8(converted)
    return converted, export


def require_nncf(spec: EngineSpec) -> None:
    """EngineUnsupported (the case skips, saying what to install) without nncf, which the
    8-bit paths need."""
    if importlib.util.find_spec("nncf") is None:
        raise EngineUnsupported(f"engine {spec}: int8 needs nncf, not installed here; "
                                "pip install 'infersuite[openvino]'")


def compress_int8(converted: Any) -> Any:
    """The model's weights compressed to 8 bits (nncf INT8_ASYM: per output channel, with
    a zero point, no calibration data)."""
    import logging

    import nncf

    logging.getLogger("nncf").setLevel(logging.WARNING)  # its tables and progress
    return nncf.compress_weights(converted, mode=nncf.CompressWeightsMode.INT8_ASYM)


def count_int8_constants(model: Any) -> int:
    """How many 8-bit constants (compressed weights) an OpenVINO model holds."""
    import openvino

    eight_bit = (openvino.Type.i8, openvino.Type.u8)
    return sum(1 for op in model.get_ops()
               if op.get_type_name() == "Constant" and op.get_element_type() in eight_bit)


def compile_for_cpu(converted: Any, precision: str, threads: int) -> Any:
    """The converted model compiled for the CPU plugin at that inference precision hint."""
    import openvino

    return openvino.Core().compile_model(converted, "CPU", {
        "INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads})


def create(context: EngineContext) -> OpenVinoEngine:
    precision, weights, activations, threads = _parse_args(context.spec)
    if context.dtype != "float32" or context.device != "cpu":
        raise EngineUnsupported(f"engine {context.spec}: runs float32 cases on the CPU (the "
                                "conversion starts from the float32 model; ask for bfloat16 "
                                "arithmetic with precision=bf16)")
    require_installed(context.spec)
    if "int8" in (weights, activations):
        require_nncf(context.spec)
    from infersuite.formats.onnx_export import decode_export_limitation, kv_layout

    model = _fp32_cpu_model(context)
    context.workdir.mkdir(parents=True, exist_ok=True)
    from infersuite.engines import openvino_calibration as calibration

    batches = [] if activations != "int8" else calibration.calibration_batches(
        context.tokenizer, model.config.vocab_size, hf.pad_id_of(model), context.model_name)
    converted, prefill_export = _convert(context, model, "prefill", weights)
    if batches:
        converted = calibration.quantize_prefill(converted, batches)
    compiled = compile_for_cpu(converted, precision, threads)
    exports, decoder, limitations = [prefill_export], None, {}
    limitation = decode_export_limitation(model.config)
    if limitation:
        limitations = dict.fromkeys(sorted(DECODE_CAPABILITIES),
                                    f"{context.model_name}: no decode graph: {limitation}")
    else:
        decode_model, decode_export = _convert(context, model, "decode", weights)
        exports.append(decode_export)
        _, kv_heads, head_dim = kv_layout(model.config)
        if batches:
            float_decode = OvSession(compile_for_cpu(decode_model, "f32", threads))
            decode_model = calibration.quantize_decode(decode_model, float_decode, kv_heads,
                                                       head_dim, batches)
        decode = compile_for_cpu(decode_model, precision, threads)
        decoder = ort_helpers.OrtDecoder(OvSession(decode), kv_heads, head_dim)
    engine = OpenVinoEngine(context.spec, model, OvSession(compiled), decoder, exports,
                            "openvino", threads, limitations, context.tokenizer)
    compiled_as = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # "bf16"
    engine.asked, engine.compiled_as, engine.weights = precision, compiled_as, weights
    engine.activations = activations
    engine.runtime = runtime_precisions(compiled)
    # what the reference rule judges: the precision compiled, not the one asked for, and
    # 8-bit weights as quantized weights when the matrix nodes run on them
    engine.compute_dtype = PRECISIONS.get(compiled_as, compiled_as)
    quantized = any(key.endswith((":u8", ":i8")) for key in engine.runtime)
    engine.precision = engine.compute_dtype
    if quantized and "int8" in (weights, activations):
        engine.precision = "INT8_PTQ" if activations == "int8" else "INT8_ASYM"
    return engine


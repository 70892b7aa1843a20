"""One float32 PyTorch module run by each CPU runtime: the variants a speed-up claim compares.

Each variant is built from the same module and called on the same float32 input (a NumPy
array), returning the module's output as a NumPy array, so the variants can be timed in
interleaved rounds and their outputs compared with PyTorch float32's:

- ``torch-fp32``: the module in eager mode under ``torch.inference_mode``;
- ``torch-compile``: ``torch.compile`` of it (inductor; the first call compiles);
- ``onnxruntime-fp32``: its ONNX export (formats/onnx_export.py) in an InferenceSession;
- ``openvino-fp32`` / ``openvino-bf16``: that ONNX graph converted by
  ``openvino.convert_model`` and compiled for the CPU with that inference precision hint;
- ``openvino-int8w``: weights compressed to 8 bits (``nncf.compress_weights``, INT8_ASYM),
  activations as compiled;
- ``openvino-int8``: post-training quantization (``nncf.quantize``, transformer preset)
  calibrated on inputs other than the measured one: 8-bit weights and activations.

What each variant actually ran in is read back, not assumed: the compiled OpenVINO model's
inference precision and its matrix nodes' runtime precisions (engines/openvino_engine.py).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VARIANTS = ("torch-fp32", "torch-compile", "onnxruntime-fp32", "openvino-fp32",
            "openvino-bf16", "openvino-int8w", "openvino-int8")
REFERENCE = "torch-fp32"


class VariantUnavailable(RuntimeError):
    """This host cannot build the variant; the message says why and what to install."""


@dataclass
class Variant:
    name: str
    runtime: str  # library and version
    precision: str  # as read back from the runtime
    setup_s: float  # export, conversion, quantization, compilation, first call
    run: Callable[[Any], Any]  # float32 ndarray -> ndarray
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Inputs:
    """What every variant is built from."""

    module: Any  # a float32 torch.nn.Module returning an object with .last_hidden_state
    example: Any  # float32 ndarray: the measured input
    calibration: Sequence[Any]  # float32 ndarrays, other than `example`
    workdir: Path
    threads: int


def _torch(inputs: Inputs, compiled: bool) -> Variant:
    import torch

    torch.set_num_threads(inputs.threads)
    module = inputs.module
    if compiled:
        try:
            module = torch.compile(inputs.module)
        except RuntimeError as exc:
            raise VariantUnavailable(f"torch.compile: {exc}") from exc

    def run(features: Any) -> Any:
        with torch.inference_mode():
            return module(torch.from_numpy(features)).last_hidden_state.numpy()

    start = time.perf_counter()
    try:
        run(inputs.example)
    except Exception as exc:  # inductor reports a missing compiler as one of many types
        if not compiled:
            raise
        raise VariantUnavailable(f"torch.compile failed on its first call: "
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    return Variant("torch-compile" if compiled else "torch-fp32", f"torch {torch.__version__}",
                   "f32", time.perf_counter() - start, run,
                   {"mode": "torch.compile (inductor)" if compiled else "eager"})


def _onnx_path(inputs: Inputs) -> Path:
    import torch

    from infersuite.formats.onnx_export import export_encoder

    path = inputs.workdir / "encoder.onnx"
    if not path.exists():
        inputs.workdir.mkdir(parents=True, exist_ok=True)
        # the tracer's warnings are about transformers' code, not the user's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_encoder(inputs.module, torch.from_numpy(inputs.example), path)
    return path


def _require(engine: str, *also: str) -> None:
    """VariantUnavailable, with what to install, when `engine`'s packages (or `also`) are
    missing."""
    import importlib.util

    from infersuite.engines.base import find_missing_requirements

    reason = find_missing_requirements(engine)
    missing = [m for m in also if importlib.util.find_spec(m) is None]
    if reason is None and missing:
        reason = f"{', '.join(missing)} not installed here; pip install 'infersuite[openvino]'"
    if reason is not None:
        raise VariantUnavailable(reason)


def _onnxruntime(inputs: Inputs) -> Variant:
    _require("onnxruntime")
    import onnxruntime as ort

    start = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = inputs.threads, 1
    session = ort.InferenceSession(str(_onnx_path(inputs)), options,
                                   providers=["CPUExecutionProvider"])

    def run(features: Any) -> Any:
        return session.run(None, {"input_features": features})[0]

    run(inputs.example)
    return Variant("onnxruntime-fp32", f"onnxruntime {ort.__version__}", "f32",
                   time.perf_counter() - start, run)


def _openvino(inputs: Inputs, name: str) -> Variant:
    _require("openvino", *(("nncf",) if "int8" in name else ()))
    import openvino

    from infersuite.engines.openvino_engine import (
        OvSession,
        compile_for_cpu,
        compress_int8,
        runtime_precisions,
    )

    start = time.perf_counter()
    converted = openvino.convert_model(str(_onnx_path(inputs)))
    hint = "bf16" if name == "openvino-bf16" else "f32"
    if name == "openvino-int8w":
        converted = compress_int8(converted)
    elif name == "openvino-int8":
        from infersuite.engines.openvino_calibration import quantize

        converted = quantize(converted, [{"input_features": x} for x in inputs.calibration])
    compiled = compile_for_cpu(converted, hint, inputs.threads)
    session = OvSession(compiled)

    def run(features: Any) -> Any:
        return session.run(None, {"input_features": features})[0]

    run(inputs.example)
    counts = runtime_precisions(compiled)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    low = sorted({key.split(":")[1] for key in counts} - {"f32", "bf16", "f16"})
    if low:
        precision = f"{precision} + {'/'.join(low)} matrix nodes"
    return Variant(name, f"openvino {openvino.__version__}", precision,
                   time.perf_counter() - start, run,
                   {"hint": hint, "runtime_precisions": ", ".join(f"{k}x{v}"
                                                                  for k, v in counts.items())})


def build_variant(name: str, inputs: Inputs) -> Variant:
    if name in ("torch-fp32", "torch-compile"):
        return _torch(inputs, compiled=name == "torch-compile")
    if name == "onnxruntime-fp32":
        return _onnxruntime(inputs)
    if name.startswith("openvino-") and name in VARIANTS:
        return _openvino(inputs, name)
    raise ValueError(f"variant {name!r}: expected one of {', '.join(VARIANTS)}")

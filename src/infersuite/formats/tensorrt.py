"""Find a TensorRT runtime: onnxruntime's TensorrtExecutionProvider or the tensorrt package."""

from __future__ import annotations

import importlib.util


def find_tensorrt() -> tuple[str | None, str]:
    """(backend, detail): backend is "ort-trt", "tensorrt" or None; detail says what was
    found or what is missing."""
    missing: list[str] = []
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        if "TensorrtExecutionProvider" in available:
            return "ort-trt", f"onnxruntime {ort.__version__} TensorrtExecutionProvider"
        missing.append(f"onnxruntime {ort.__version__} has no TensorrtExecutionProvider "
                       f"(available: {', '.join(available)}; it needs onnxruntime-gpu built "
                       "with TensorRT and the TensorRT libraries)")
    else:
        missing.append("onnxruntime is not installed")
    if importlib.util.find_spec("tensorrt") is not None:
        return "tensorrt", "the tensorrt package"
    missing.append("the tensorrt package is not importable")
    return None, "; ".join(missing)

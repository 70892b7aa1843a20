"""TensorRT: the ONNX prefill graph through TensorRT, where a TensorRT runtime exists."""

from __future__ import annotations

import pytest

from infersuite.conformance.compare import check_close
from infersuite.conformance.tolerances import Tolerance
from infersuite.engines import hf
from infersuite.formats.tensorrt import find_tensorrt

# Formats of the transformers model itself: run once per model, not per engine.
pytestmark = [pytest.mark.conformance, pytest.mark.infer_cases(engines=("hf",))]

# TensorRT may pick TF32/fp16 tactics; this is the float32 ORT bound, loosened 10x.
TRT_TOLERANCE = Tolerance(1e-3, 1e-3)


def test_tensorrt_prefill_matches_torch(infer_case, tmp_path):
    backend, detail = find_tensorrt()
    if backend is None:
        pytest.skip(f"no TensorRT runtime: {detail}")
    if backend != "ort-trt" or not infer_case.case.device.startswith("cuda"):
        pytest.skip(f"TensorRT found ({detail}) but this check runs only through onnxruntime's "
                    "TensorrtExecutionProvider on a CUDA case")
    if infer_case.case.dtype != "float32":
        pytest.skip("the exported ONNX graph is float32 only")
    import onnxruntime as ort

    from infersuite.engines.onnx import run_prefill
    from infersuite.formats.onnx_export import export_prefill

    export = export_prefill(infer_case.model.float().cpu(), tmp_path / "prefill.onnx")
    session = ort.InferenceSession(str(export.path), providers=[
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    model = infer_case.model
    ids, mask = hf.pad_left(infer_case.prompt_ids(), hf.pad_id_of(model), infer_case.case.device)
    expected = hf.forward_logits(model, ids, mask).cpu()
    valid = mask.cpu().bool()[..., None]
    check_close(run_prefill(session, ids, mask) * valid, expected * valid, TRT_TOLERANCE,
                "TensorRT prefill logits vs torch (valid positions)", infer_case.context,
                axes=("row", "position", "vocab"))

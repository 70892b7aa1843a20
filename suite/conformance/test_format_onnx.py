"""ONNX export + onnxruntime: logits at valid positions and greedy tokens match torch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from infersuite.conformance.compare import check_close, check_greedy_runs
from infersuite.conformance.tolerances import Tolerance
from infersuite.engines import hf

# Formats of the transformers model itself: run once per model, not per engine.
pytestmark = [pytest.mark.conformance, pytest.mark.infer_cases(engines=("hf",))]

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed "
                          "(pip install 'infersuite[formats]')")
pytest.importorskip("onnx", reason="onnx is not installed (pip install 'infersuite[formats]')")

from infersuite.engines.onnx import OrtDecoder, open_session, providers_for, run_prefill  # noqa: E402
from infersuite.formats.onnx_export import (  # noqa: E402
    OnnxExport,
    decode_export_limitation,
    export_decode,
    export_prefill,
    graph_input_names,
    kv_layout,
)

# docs/tolerances.md: ONNX Runtime vs torch logits, float32.
ORT_TOLERANCE = Tolerance(1e-4, 1e-4)
N_NEW_TOKENS = 8
# Shapes never used for export (export used batch 2, lengths 5 and 3): a single row,
# a padded batch of 3, and a longer padded batch of 2.
CHECK_LENGTHS = ((8,), (12, 2, 7), (17, 4))


def _require_float32(infer_case) -> None:
    if infer_case.case.dtype != "float32":
        pytest.skip(f"ONNX graphs here are float32 only; {infer_case.case.dtype} is not exported")
    try:
        providers_for(infer_case.case.device)
    except LookupError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def onnx_exports(tmp_path_factory):
    """(model id, graph kind) -> OnnxExport, exported once per module."""
    return {"dir": tmp_path_factory.mktemp("onnx")}


def _exported(exports, infer_case, kind: str, format_report) -> OnnxExport:
    key = (infer_case.case.model_id, kind)
    if key not in exports:
        path = Path(exports["dir"]) / f"{infer_case.case.model_id}-{kind}.onnx"
        export = export_prefill if kind == "prefill" else export_decode
        exports[key] = export(infer_case.model, path)
        format_report.add("onnx", infer_case.case.model_id, kind,
                          file_bytes=exports[key].file_bytes, export_s=exports[key].export_s,
                          note="torch.onnx.export dynamo=False, opset 17")
    return exports[key]


def _check_prompts(vocab_size: int) -> list[list[list[int]]]:
    import random

    rng = random.Random(11)
    return [[[rng.randrange(16, vocab_size) for _ in range(n)] for n in lengths]
            for lengths in CHECK_LENGTHS]


def test_onnx_prefill_matches_torch(infer_case, onnx_exports, format_report):
    """Logits at valid positions within 1e-4 of torch on three unseen shapes."""
    _require_float32(infer_case)
    export = _exported(onnx_exports, infer_case, "prefill", format_report)
    session = open_session(export.path, infer_case.case.device)
    model = infer_case.model
    worst = 0.0
    for prompts in _check_prompts(model.config.vocab_size):
        ids, mask = hf.pad_left(prompts, hf.pad_id_of(model), infer_case.case.device)
        expected = hf.forward_logits(model, ids, mask).cpu()
        actual = run_prefill(session, ids, mask)
        # Padded positions' outputs are undefined: zero both there.
        valid = mask.cpu().bool()[..., None]
        result = check_close(actual * valid, expected * valid, ORT_TOLERANCE,
                             "onnxruntime prefill logits vs torch (valid positions)",
                             {**infer_case.context, "shape": tuple(ids.shape),
                              "provider": session.get_providers()[0]},
                             axes=("row", "position", "vocab"))
        worst = max(worst, result.max_abs_diff)
    format_report.add("onnx", infer_case.case.model_id, "prefill-vs-torch",
                      max_abs_diff=worst, note=f"{len(CHECK_LENGTHS)} unseen shapes, tol 1e-4")


def test_onnx_keeps_attention_mask_input(infer_case, onnx_exports, format_report):
    """The exported graphs keep `attention_mask` (it vanishes when exported unpadded)."""
    _require_float32(infer_case)
    export = _exported(onnx_exports, infer_case, "prefill", format_report)
    inputs = graph_input_names(export.path)
    assert inputs == ["input_ids", "attention_mask"], (
        f"{export.path.name}: graph inputs {inputs}, expected ['input_ids', 'attention_mask'] "
        f"[{infer_case.id}]")


def test_onnx_decode_greedy_matches_torch(infer_case, onnx_exports, format_report):
    """A greedy loop through the ORT decode graph (flat KV in/out) == hf.generate_greedy."""
    _require_float32(infer_case)
    limitation = decode_export_limitation(infer_case.model.config)
    if limitation:
        pytest.skip(f"{infer_case.case.model_id}: decode graph not exportable: {limitation}")
    export = _exported(onnx_exports, infer_case, "decode", format_report)
    assert "attention_mask" in graph_input_names(export.path)
    model = infer_case.model
    _, kv_heads, head_dim = kv_layout(model.config)
    decoder = OrtDecoder(open_session(export.path, infer_case.case.device), kv_heads, head_dim)
    ids, mask = hf.pad_left(infer_case.prompt_ids(), hf.pad_id_of(model), infer_case.case.device)
    ref_tokens, ref_logits = hf.generate_greedy(model, ids, mask, N_NEW_TOKENS)
    tokens, logits = decoder.greedy(ids, mask, N_NEW_TOKENS, banned=hf.eos_ids(model))
    context = {**infer_case.context, "prompt_width": ids.shape[1]}
    compared = check_greedy_runs((tokens, logits), (ref_tokens.cpu(), ref_logits.cpu()),
                                 ORT_TOLERANCE, "ORT greedy decode vs torch generate", context)
    identical = bool(torch.equal(tokens, ref_tokens.cpu()))
    format_report.add("onnx", infer_case.case.model_id, "decode-greedy-vs-torch",
                      max_abs_diff=max(c.max_abs_diff for c in compared),
                      note=f"{N_NEW_TOKENS} greedy tokens "
                           f"{'identical' if identical else 'identical up to a near-tie'}")

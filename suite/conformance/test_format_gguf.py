"""GGUF: llama.cpp names/permutation/metadata; exact floats, bounded quants, model quality."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from infersuite.conformance.agreement import QUANTIZED_GATES
from infersuite.conformance.compare import ConformanceError
from infersuite.conformance.quality import compute_quality
from infersuite.engines import hf
from infersuite.formats.checks import check_tensors_bit_exact, check_within_bound

# Formats of the transformers model itself: run once per model, not per engine.
pytestmark = [pytest.mark.conformance, pytest.mark.infer_cases(engines=("hf",))]

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed "
                           "(pip install 'infersuite[formats]')")

from infersuite.formats.errors import FormatError  # noqa: E402
from infersuite.formats.gguf_io import (  # noqa: E402
    GgufFile,
    decode_tensor,
    gguf_architecture,
    permute_qk,
    read_gguf,
    to_gguf_name,
    to_hf_state_dict,
    write_gguf,
)
from infersuite.formats.quant_bounds import (  # noqa: E402
    compute_quant_bound,
    find_requantize_mismatch,
)

Q = gguf.GGMLQuantizationType
# Model-level gates vs the float32 original over the prompts' valid positions: KL and
# top-1 from infersuite.conformance.agreement (the same gates judge llama.cpp running the
# file), SQNR here. Measured SQNR on llama-tiny / qwen2-tiny: F16 58.1 / 57.6 dB, Q8_0
# 29.3 / 28.9 dB, Q4_0 6.4 / 6.0 dB.
MIN_SQNR_DB = {"F16": 45.0, "Q8_0": 20.0, "Q4_0": 2.0}
QUALITY_GATES = {  # qtype: (max KL nats, min SQNR dB, min top-1 agreement); GGUF's types
    name: (*QUANTIZED_GATES[name][:1], sqnr, QUANTIZED_GATES[name][1])
    for name, sqnr in MIN_SQNR_DB.items()}
LLAMA_METADATA = ("context_length", "embedding_length", "block_count", "feed_forward_length",
                  "attention.head_count", "attention.head_count_kv",
                  "attention.layer_norm_rms_epsilon", "rope.freq_base", "rope.dimension_count")


def _require_llama_family(infer_case) -> str:
    if infer_case.case.dtype != "float32":
        pytest.skip(f"GGUF is written from the float32 master weights; {infer_case.case.dtype} "
                    "adds nothing")
    try:
        return gguf_architecture(infer_case.model.config)
    except FormatError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def gguf_files(tmp_path_factory):
    return {"dir": tmp_path_factory.mktemp("gguf")}


def _written(files, infer_case, qtype, format_report) -> GgufFile:
    key = (infer_case.case.model_id, qtype.name)
    if key not in files:
        path = Path(files["dir"]) / f"{infer_case.case.model_id}-{qtype.name}.gguf"
        save_s = write_gguf(infer_case.model.state_dict(), infer_case.model.config, path, qtype)
        files[key] = read_gguf(path)
        format_report.add("gguf", infer_case.case.model_id, qtype.name,
                          file_bytes=path.stat().st_size, save_s=save_s)
    return files[key]


def _source(infer_case, gguf_name: str, hf_name: str) -> np.ndarray:
    """The float32 source tensor in GGUF row order (Q/K permuted for llama)."""
    array = infer_case.model.state_dict()[hf_name].detach().float().cpu().numpy()
    config = infer_case.model.config
    kind = gguf_name.split(".")[-2]
    if gguf_architecture(config) == "llama" and kind in ("attn_q", "attn_k"):
        heads = config.num_attention_heads if kind == "attn_q" else config.num_key_value_heads
        array = permute_qk(array, heads)
    return array


def test_gguf_f32_bit_exact_with_llama_names(infer_case, gguf_files, format_report):
    arch = _require_llama_family(infer_case)
    written = _written(gguf_files, infer_case, Q.F32, format_report)
    state = infer_case.model.state_dict()
    expected = {to_gguf_name(n): torch.from_numpy(_source(infer_case, to_gguf_name(n), n))
                for n in state}
    actual = {n: torch.from_numpy(decode_tensor(t).reshape(expected[n].shape))
              for n, t in written.tensors.items()}
    assert {"token_embd.weight", "blk.0.attn_q.weight", "output_norm.weight"} <= set(actual)
    check_tensors_bit_exact(actual, expected, "GGUF F32 write -> read", infer_case.context)
    missing = [k for k in LLAMA_METADATA if f"{arch}.{k}" not in written.metadata]
    assert not missing, f"GGUF metadata lacks {arch}.{missing} [{infer_case.id}]"
    assert written.metadata["general.architecture"] == arch


@pytest.mark.parametrize("qtype_name", ["F16", "BF16"])
def test_gguf_half_exact_vs_cast_source(infer_case, gguf_files, format_report, qtype_name):
    """F16/BF16 matrices equal the float32 source cast by torch (round to nearest even)."""
    _require_llama_family(infer_case)
    written = _written(gguf_files, infer_case, Q[qtype_name], format_report)
    cast = torch.float16 if qtype_name == "F16" else torch.bfloat16
    for hf_name in infer_case.model.state_dict():
        name = to_gguf_name(hf_name)
        source = torch.from_numpy(_source(infer_case, name, hf_name))
        stored = written.tensors[name]
        want = source.to(cast).float() if stored.qtype == Q[qtype_name] else source
        got = torch.from_numpy(decode_tensor(stored).reshape(source.shape))
        check_tensors_bit_exact({name: got}, {name: want}, f"GGUF {qtype_name} vs cast source",
                                infer_case.context)


def _check_quant(infer_case, gguf_files, format_report, qtype) -> float:
    _require_llama_family(infer_case)
    written = _written(gguf_files, infer_case, qtype, format_report)
    worst, n_quantized = 0.0, 0
    for hf_name in infer_case.model.state_dict():
        name = to_gguf_name(hf_name)
        stored = written.tensors[name]
        if stored.qtype != qtype:
            continue
        source = _source(infer_case, name, hf_name)
        got = decode_tensor(stored).reshape(source.shape)
        worst = max(worst, check_within_bound(
            torch.from_numpy(got), torch.from_numpy(source),
            torch.from_numpy(compute_quant_bound(source, qtype)),
            f"GGUF {qtype.name} tensor {name!r} vs source (bound from the block scale)",
            infer_case.context))
        block = find_requantize_mismatch(stored.data, qtype)
        if block is not None:
            raise ConformanceError(f"GGUF {qtype.name} tensor {name!r}: quantize(dequantize(q)) "
                                   f"!= q at block {block} (elements {block * 32}..."
                                   f"{block * 32 + 31} in row-major order); re-quantization "
                                   f"is not idempotent [{infer_case.id}]")
        n_quantized += 1
    assert n_quantized, f"no tensor stored as {qtype.name} [{infer_case.id}]"
    format_report.add("gguf", infer_case.case.model_id, f"{qtype.name}-weights",
                      max_abs_diff=worst, note=f"{n_quantized} tensors within bound, idempotent")
    return worst


def test_gguf_q8_0_within_bounds(infer_case, gguf_files, format_report):
    _check_quant(infer_case, gguf_files, format_report, Q.Q8_0)


def test_gguf_q4_0_within_bounds(infer_case, gguf_files, format_report):
    _check_quant(infer_case, gguf_files, format_report, Q.Q4_0)


def test_gguf_quality_order(infer_case, gguf_files, format_report):
    """Dequantized weights loaded back: F16 better than Q8_0 better than Q4_0, each gated."""
    _require_llama_family(infer_case)
    model = infer_case.model
    ids, mask = hf.pad_left(infer_case.prompt_ids(), hf.pad_id_of(model), infer_case.case.device)
    valid = mask.bool()
    reference = hf.forward_logits(model, ids, mask)[valid]
    figures = {}
    for name, (max_kl, min_sqnr, min_top1) in QUALITY_GATES.items():
        written = _written(gguf_files, infer_case, Q[name], format_report)
        restored = copy.deepcopy(model)
        restored.load_state_dict(to_hf_state_dict(written, model.state_dict(), model.config))
        quality = compute_quality(reference, hf.forward_logits(restored, ids, mask)[valid])
        figures[name] = quality
        format_report.add("gguf", infer_case.case.model_id, f"{name}-model",
                          kl=quality.kl_divergence, sqnr_db=quality.sqnr_db,
                          top1=quality.top1_agreement)
        if not (quality.kl_divergence <= max_kl and quality.sqnr_db >= min_sqnr
                and quality.top1_agreement >= min_top1):
            raise ConformanceError(
                f"GGUF {name} model quality vs float32: {quality.describe()}; gate KL <= "
                f"{max_kl:g}, SQNR >= {min_sqnr:g} dB, top-1 >= {min_top1:.0%} "
                f"[{infer_case.id}]")
    kl = [figures[n].kl_divergence for n in QUALITY_GATES]
    sqnr = [figures[n].sqnr_db for n in QUALITY_GATES]
    assert kl == sorted(kl), f"KL order F16 < Q8_0 < Q4_0 broken: {kl} [{infer_case.id}]"
    assert sqnr == sorted(sqnr, reverse=True), (
        f"SQNR order F16 > Q8_0 > Q4_0 broken: {sqnr} [{infer_case.id}]")

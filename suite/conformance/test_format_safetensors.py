"""safetensors: save -> load is bit-exact per tensor, and the reloaded model's logits equal."""

from __future__ import annotations

import time

import pytest
import torch

from infersuite.conformance.compare import check_close
from infersuite.conformance.tolerances import Tolerance
from infersuite.engines import hf
from infersuite.formats.checks import check_tensors_bit_exact
from infersuite.formats.safetensors_io import load_safetensors_dir, save_safetensors_file
from infersuite.models.loader import load_model

# Formats of the transformers model itself: run once per model, not per engine.
pytestmark = [pytest.mark.conformance, pytest.mark.infer_cases(engines=("hf",))]

BIT_EXACT = Tolerance(0.0, 0.0)


def _untied(state: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """Drop tied aliases (lm_head = embed_tokens): safetensors refuses shared storage."""
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    return state


def _dir_bytes(path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.safetensors"))


@pytest.mark.parametrize("store_dtype", ["float32", "float16", "bfloat16"])
def test_safetensors_round_trip_bit_exact(infer_case, store_dtype, tmp_path, format_report):
    """Every tensor, cast to `store_dtype`, comes back with the same dtype and bits."""
    model = infer_case.model
    if infer_case.case.dtype != "float32" and store_dtype != infer_case.case.dtype:
        pytest.skip(f"store dtype {store_dtype} is covered by the float32 case")
    state = _untied({k: v.to(getattr(torch, store_dtype)) for k, v in model.state_dict().items()},
                    model)
    path = tmp_path / "model.safetensors"
    start = time.perf_counter()
    save_safetensors_file(state, path)
    save_s = time.perf_counter() - start
    start = time.perf_counter()
    loaded = load_safetensors_dir(tmp_path)
    load_s = time.perf_counter() - start
    count = check_tensors_bit_exact(loaded, state, "safetensors save -> load",
                                    {**infer_case.context, "store_dtype": store_dtype})
    format_report.add("safetensors", infer_case.case.model_id, store_dtype,
                      file_bytes=_dir_bytes(tmp_path), save_s=save_s, load_s=load_s,
                      max_abs_diff=0.0, note=f"{count} tensors bit-exact")


def test_safetensors_reload_logits_equal(infer_case, tmp_path, format_report):
    """from_pretrained on the saved directory: same state dict, same logits (bit-exact)."""
    model = infer_case.model
    model.save_pretrained(tmp_path)
    dtype = getattr(torch, infer_case.case.dtype)
    start = time.perf_counter()
    reloaded = load_model(str(tmp_path), dtype, infer_case.case.device).model
    load_s = time.perf_counter() - start
    check_tensors_bit_exact(reloaded.state_dict(), model.state_dict(),
                            "reloaded model state dict", infer_case.context)
    ids, mask = hf.pad_left(infer_case.prompt_ids(), hf.pad_id_of(model), infer_case.case.device)
    expected = hf.forward_logits(model, ids, mask)
    actual = hf.forward_logits(reloaded, ids, mask)
    check_close(actual, expected, BIT_EXACT, "reloaded model logits vs original",
                infer_case.context, axes=("row", "position", "vocab"))
    format_report.add("safetensors", infer_case.case.model_id, f"reload-{infer_case.case.dtype}",
                      file_bytes=_dir_bytes(tmp_path), load_s=load_s,
                      max_abs_diff=float((actual - expected).abs().max()),
                      note="from_pretrained, logits bit-exact")


def test_safetensors_sharded_round_trip(infer_case, tmp_path):
    """A checkpoint split into shards with model.safetensors.index.json reloads bit-exactly."""
    model = infer_case.model
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    shards = sorted(tmp_path.glob("*.safetensors"))
    assert (tmp_path / "model.safetensors.index.json").is_file(), f"no index [{infer_case.id}]"
    assert len(shards) > 1, (
        f"expected a sharded checkpoint, got {[p.name for p in shards]} [{infer_case.id}]")
    loaded = load_safetensors_dir(tmp_path)
    state = model.state_dict()
    check_tensors_bit_exact(loaded, {name: state[name] for name in loaded},
                            "sharded safetensors save -> load",
                            {**infer_case.context, "shards": len(shards)})

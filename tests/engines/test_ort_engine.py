"""The onnxruntime engine against transformers float32 on llama-tiny: logits, greedy,
cache continuation, fork, and the cases and arguments it refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from infersuite.conformance.compare import check_close
from infersuite.conformance.tolerances import Tolerance
from infersuite.engines import hf
from infersuite.engines.base import EngineContext, EngineError, EngineUnsupported, parse_engine_spec
from infersuite.models import load_model

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnx", reason="onnx is not installed")

from infersuite.engines.ort_engine import OrtEngine, create

# docs/tolerances.md: ONNX Runtime vs torch logits, float32.
ORT_TOLERANCE = Tolerance(1e-4, 1e-4)
PROMPTS = [[21, 37, 45, 60, 71, 82, 93, 104, 115], [30, 41, 52], [17, 28, 39, 50, 61, 72]]


def _context(model: object, workdir: Path, spec: str = "onnxruntime", dtype: str = "float32",
             device: str = "cpu") -> EngineContext:
    return EngineContext(parse_engine_spec(spec), model, None, "llama-tiny", dtype, device,
                         workdir, reference_fp32=lambda: model)


@pytest.fixture(scope="module")
def llama() -> torch.nn.Module:
    return load_model("llama-tiny", torch.float32, "cpu", False).model


@pytest.fixture(scope="module")
def engine(llama, tmp_path_factory) -> Iterator[OrtEngine]:
    built = create(_context(llama, tmp_path_factory.mktemp("ort")))
    yield built
    built.close()


def _padded(model) -> tuple[torch.Tensor, torch.Tensor]:
    return hf.pad_left(PROMPTS, hf.pad_id_of(model))


def test_forward_logits_match_transformers(engine, llama):
    ids, mask = _padded(llama)
    logits = engine.forward_logits(ids, mask)
    assert logits.dtype == torch.float32
    assert logits.device.type == "cpu"
    valid = mask.bool()
    check_close(logits[valid], hf.forward_logits(llama, ids, mask)[valid], ORT_TOLERANCE,
                "onnxruntime vs transformers float32 logits (valid positions)",
                {"shape": tuple(ids.shape)}, axes=("valid_position", "vocab"))


def test_greedy_matches_transformers(engine, llama):
    ids, mask = _padded(llama)
    tokens, logits = engine.generate_greedy(ids, mask, 10)
    ref_tokens, ref_logits = hf.generate_greedy(llama, ids, mask, 10)
    assert tokens.tolist() == ref_tokens.tolist()
    check_close(logits, ref_logits, ORT_TOLERANCE, "onnxruntime greedy step logits", {},
                axes=("row", "step", "vocab"))
    assert not set(tokens.flatten().tolist()) & set(engine.eos_ids)


def test_cache_continuation_matches_one_pass(engine, llama):
    """Prefill the first tokens, feed the rest in two steps: the same logits as one pass,
    and the cache holds (batch, kv_heads, seq, head_dim) per layer."""
    ids, mask = _padded(llama)
    width = ids.shape[1]
    _, state = engine.prefill(ids[:, :width - 3], mask[:, :width - 3])
    engine.decode_step(state, ids[:, width - 3:width - 1], mask[:, :width - 1])
    last = engine.decode_step(state, ids[:, width - 1:], mask)[:, -1]
    check_close(last, hf.forward_logits(llama, ids, mask)[:, -1], ORT_TOLERANCE,
                "cached continuation vs transformers one pass", {}, axes=("row", "vocab"))
    tensors = engine.cache_tensors(state)
    config = llama.config
    assert len(tensors) == config.num_hidden_layers
    for keys, values in tensors:
        for tensor in (keys, values):
            assert tuple(tensor.shape) == (3, config.num_key_value_heads, width,
                                           config.head_dim)
            assert tensor.dtype == torch.float32


def test_fork_is_independent(engine, llama):
    ids, mask = hf.pad_left([PROMPTS[0]], 0)
    _, state = engine.prefill(ids[:, :6], mask[:, :6])
    saved = engine.fork(state)
    before = [array.copy() for array in saved]
    first = engine.decode_step(state, ids[:, 6:8], mask[:, :8])
    engine.decode_step(state, ids[:, 8:], mask)  # the original moves on
    assert all((a == b).all() for a, b in zip(saved, before, strict=True))
    replay = engine.decode_step(saved, ids[:, 6:8], mask[:, :8])
    assert torch.equal(replay, first)


def test_describe_and_export_record(engine):
    info = engine.describe()
    for key in ("engine", "onnxruntime", "providers", "opset", "graph_optimization"):
        assert info[key], key
    assert info["providers"] == "CPUExecutionProvider"
    assert info["graph_optimization"] == "all"
    assert engine.export_s > 0
    assert [e.path.name for e in engine.exports] == ["prefill.onnx", "decode.onnx"]
    assert all(e.path.is_file() for e in engine.exports)
    assert engine.capabilities >= {"logits", "padded_batch", "greedy", "cache", "kv_layout"}
    assert engine.limitations == {}


def test_arguments_set_threads_and_optimization(llama, tmp_path):
    built = create(_context(llama, tmp_path, "onnxruntime:threads=1,opt=none"))
    assert built.describe()["graph_optimization"] == "none"
    assert built.describe()["threads"] == "1"
    ids, mask = _padded(llama)
    valid = mask.bool()
    check_close(built.forward_logits(ids, mask)[valid], hf.forward_logits(llama, ids, mask)[valid],
                ORT_TOLERANCE, "opt=none logits vs transformers", {},
                axes=("valid_position", "vocab"))


def test_bfloat16_is_unsupported(llama, tmp_path):
    with pytest.raises(EngineUnsupported, match=r"bfloat16 is not supported.*float32"):
        create(_context(llama, tmp_path, dtype="bfloat16"))
    assert not list(tmp_path.iterdir()), "nothing is exported for an unsupported case"


def test_cuda_without_gpu_provider_is_unsupported(llama, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed: CUDA is supported here")
    with pytest.raises(EngineUnsupported, match=r"CUDAExecutionProvider.*onnxruntime-gpu"):
        create(_context(llama, tmp_path, device="cuda"))


@pytest.mark.parametrize(("spec", "words"), [
    ("onnxruntime:thread=4", r"unknown argument\(s\) \['thread'\].*threads=N.*opt="),
    ("onnxruntime:opt=fast", r"opt='fast'; expected one of all, basic, none"),
    ("onnxruntime:threads=0", r"threads='0'; expected a whole number"),
])
def test_bad_argument_is_an_engine_error(llama, tmp_path, spec, words):
    with pytest.raises(EngineError, match=words) as raised:
        create(_context(llama, tmp_path, spec))
    assert not isinstance(raised.value, EngineUnsupported)


def test_sliding_window_model_keeps_logits_and_says_why(tmp_path):
    """gemma3's decode graph would freeze at the export shape: no cache capabilities, and
    the engine says why instead of failing later."""
    gemma = load_model("gemma3-tiny", torch.float32, "cpu", False).model
    built = create(EngineContext(parse_engine_spec("onnxruntime"), gemma, None, "gemma3-tiny",
                                 "float32", "cpu", tmp_path, reference_fp32=lambda: gemma))
    assert built.capabilities == {"logits", "padded_batch"}
    assert set(built.limitations) == {"greedy", "cache", "kv_layout", "stream"}
    assert "sliding-window" in built.describe()["limitations"]
    ids, mask = hf.pad_left(PROMPTS, hf.pad_id_of(gemma))
    with pytest.raises(EngineError, match=r"greedy is unavailable.*sliding-window"):
        built.generate_greedy(ids, mask, 2)
    valid = mask.bool()
    check_close(built.forward_logits(ids, mask)[valid], hf.forward_logits(gemma, ids, mask)[valid],
                ORT_TOLERANCE, "gemma3 prefill logits vs transformers", {},
                axes=("valid_position", "vocab"))

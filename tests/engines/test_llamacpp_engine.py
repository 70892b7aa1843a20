"""The llama.cpp engine: arguments, unsupported cases, logits vs transformers, its cache."""

from __future__ import annotations

import pytest
import torch

from infersuite.engines import hf
from infersuite.engines.base import EngineContext, EngineError, EngineUnsupported, parse_engine_spec

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed "
                    "(pip install 'infersuite[test]')")
pytest.importorskip("gguf", reason="the gguf package is not installed")

from infersuite.engines.llamacpp_engine import create

PROMPT = [43, 76, 289, 85, 72, 300, 101]


@pytest.fixture(scope="module")
def llama_tiny():
    from infersuite.models.loader import load_model

    return load_model("llama-tiny", torch.float32, "cpu")


def _context(loaded, spec, tmp_path, dtype="float32", device="cpu", tokenizer=True):
    return EngineContext(parse_engine_spec(spec), loaded.model,
                         loaded.tokenizer if tokenizer else None, loaded.name, dtype, device,
                         tmp_path, reference_fp32=lambda: loaded.model)


@pytest.fixture
def engine(llama_tiny, tmp_path):
    built = create(_context(llama_tiny, "llama.cpp:isolate=off", tmp_path))
    yield built
    built.close()


def _ids(tokens):
    return hf.pad_left([tokens], 0)


@pytest.mark.parametrize(("spec", "message"), [
    ("llama.cpp:quant=Q5_K", "quant='Q5_K' (expected one of F32, F16, Q8_0, Q4_0)"),
    ("llama.cpp:kv=q8_0", "kv='q8_0' (expected one of f32, f16)"),
    ("llama.cpp:threads=0", "threads='0' (expected a positive integer)"),
    ("llama.cpp:flash=on", "unknown argument(s) ['flash']"),
])
def test_bad_arguments_say_what_the_engine_takes(llama_tiny, tmp_path, spec, message):
    with pytest.raises(EngineError, match=r"The llama\.cpp engine takes quant=") as error:
        create(_context(llama_tiny, spec, tmp_path))
    assert message in str(error.value)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"dtype": "bfloat16"}, "runs case dtype float32 only; the GGUF's precision is the quant="),
    ({"device": "cuda"}, "runs on the CPU only"),
    ({"tokenizer": False}, "has no tokenizer, and llama.cpp loads no GGUF without a vocabulary"),
])
def test_cases_it_cannot_run_are_unsupported(llama_tiny, tmp_path, changes, reason):
    with pytest.raises(EngineUnsupported, match=r"engine llama\.cpp: ") as error:
        create(_context(llama_tiny, "llama.cpp", tmp_path, **changes))
    assert reason in str(error.value)


def test_architectures_without_a_gguf_map_are_unsupported(tmp_path):
    from infersuite.models.loader import load_model

    gpt2 = load_model("gpt2-tiny", torch.float32, "cpu")
    with pytest.raises(EngineUnsupported, match="model_type 'gpt2': the GGUF writer"):
        create(_context(gpt2, "llama.cpp", tmp_path))


def test_f32_logits_match_transformers_float32_in_the_worker(llama_tiny, tmp_path):
    """F32 weights with an f32 KV cache: measured max |diff| 8.9e-6 on the prompts."""
    isolated = create(_context(llama_tiny, "llama.cpp", tmp_path))
    try:
        got = isolated.forward_logits(*_ids(PROMPT))
        want = hf.forward_logits(llama_tiny.model, *_ids(PROMPT))
        assert (got - want).abs().max() < 1e-4
        info = isolated.describe()
        assert (info["quant"], info["kv"], info["flash_attn"]) == ("F32", "f32", "off")
        assert "AVX" in info["cpu_features"], info
        assert info["isolation"].startswith("worker"), info
        assert isolated.precision == "float32"
        assert "padded_batch" in isolated.limitations
    finally:
        isolated.close()


@pytest.mark.parametrize(("spec", "precision"), [("llama.cpp:kv=f16", "float16"),
                                                 ("llama.cpp:flash_attn=on", "float16"),
                                                 ("llama.cpp:quant=Q8_0", "Q8_0")])
def test_precision_follows_weights_and_attention(llama_tiny, tmp_path, spec, precision):
    built = create(_context(llama_tiny, spec + ",isolate=off", tmp_path))
    try:
        assert built.precision == precision
    finally:
        built.close()


def test_padding_and_context_overflow_are_errors(engine):
    ids, mask = hf.pad_left([PROMPT, PROMPT[:3]], 0)
    with pytest.raises(EngineError, match="no padded_batch"):
        engine.forward_logits(ids, mask)
    long = torch.full((1, engine.settings.n_ctx + 1), 50)
    with pytest.raises(EngineError, match=r"exceed n_ctx=256; pass a larger n_ctx="):
        engine.forward_logits(long, torch.ones_like(long))


def test_fork_keeps_its_own_cache(engine):
    ids, mask = _ids(PROMPT)
    _, state = engine.prefill(ids[:, :4], mask[:, :4])
    saved = engine.fork(state)
    first = engine.decode_step(state, ids[:, 4:5], mask[:, :5])
    engine.decode_step(state, ids[:, 5:6], mask[:, :6])  # state moves on
    replay = engine.decode_step(saved, ids[:, 4:5], mask[:, :5])
    assert torch.equal(replay, first)
    one_go = engine.forward_logits(ids[:, :6], mask[:, :6])
    assert (engine.decode_step(saved, ids[:, 5:6], mask[:, :6])[0, -1]
            - one_go[0, -1]).abs().max() < 1e-5

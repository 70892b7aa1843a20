"""GGUF vocabulary: llama.cpp loads what the writer puts in and tokenizes as transformers does."""

from __future__ import annotations

from pathlib import Path

import pytest

from infersuite.conformance.inputs import load_prompts

# The transformers model's own files: once per model, not per engine.
pytestmark = [pytest.mark.conformance, pytest.mark.infer_cases(engines=("hf",))]

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed "
                           "(pip install 'infersuite[formats]')")
llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed "
                                "(pip install 'infersuite[test]')")

from infersuite.formats.errors import FormatError  # noqa: E402
from infersuite.formats.gguf_io import gguf_architecture, write_gguf  # noqa: E402

# Where byte-level BPE implementations tend to differ: runs of spaces, leading and
# trailing spaces, newlines and tabs, digit runs, contractions, accents, scripts
# without spaces, emoji (4-byte UTF-8), punctuation runs, CRLF.
TRICKY = (
    "", " ", "  two leading spaces", "trailing spaces   ", "a  b   c    d",
    "\n", "line\nbreak", "two\n\nbreaks\n", "\ttab\tseparated", " \n \t \r\n mixed",
    "a\r\nb", "12345 67 8.9 3,141 0x1F", "2026-11-29T10:30:00Z", "1000000000000",
    "it's we'll they're I'M you'D", "café naïve Ünïcödé straße", "日本語のテキスト",
    "Привет, мир", "emoji 🦙🚀 and 😶‍🌫️", "…—“quotes” «guillemets»",
    "!!!???...,,,;;;", "x = f(y) * 0.5", "def f(x):\n    return x ** 2\n",
)


def _require_writable(infer_case) -> None:
    if infer_case.case.dtype != "float32":
        pytest.skip("GGUF is written from the float32 weights; one dtype is enough")
    if infer_case.tokenizer is None:
        pytest.skip(f"{infer_case.case.model_id} has no tokenizer to write")
    try:
        gguf_architecture(infer_case.model.config)
    except FormatError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def vocab_files(tmp_path_factory):
    files = {"dir": tmp_path_factory.mktemp("gguf-vocab")}
    yield files
    for value in files.values():
        if isinstance(value, llama_cpp.Llama):
            value.close()


def _vocab_only(files, infer_case):
    """llama.cpp's view of the written file (vocabulary only: fast)."""
    _require_writable(infer_case)
    key = infer_case.case.model_id
    if key not in files:
        path = Path(files["dir"]) / f"{key}.gguf"
        model = infer_case.model
        write_gguf(model.state_dict(), model.config, path, gguf.GGMLQuantizationType.F32,
                   tokenizer=infer_case.tokenizer)
        files[key] = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    return files[key]


def _mismatches(llm, tokenizer, texts, special: bool) -> list[str]:
    found = []
    for text in texts:
        want = tokenizer(text, add_special_tokens=False)["input_ids"]
        got = llm.tokenize(text.encode(), add_bos=False, special=special)
        if got != want:
            found.append(f"{text!r}: llama.cpp {got}, transformers {want}")
    return found


def test_llamacpp_loads_the_vocabulary(infer_case, vocab_files):
    llm = _vocab_only(vocab_files, infer_case)
    tokenizer, config = infer_case.tokenizer, infer_case.model.config
    assert llm.n_vocab() == config.vocab_size, (
        f"llama.cpp reads {llm.n_vocab()} tokens, the model has {config.vocab_size}")
    assert (llm.token_bos(), llm.token_eos()) == (tokenizer.bos_token_id,
                                                  tokenizer.eos_token_id), (
        f"llama.cpp BOS/EOS {llm.token_bos()}/{llm.token_eos()}, tokenizer "
        f"{tokenizer.bos_token_id}/{tokenizer.eos_token_id} [{infer_case.id}]")
    with_specials = tokenizer("Hi there", add_special_tokens=True)["input_ids"]
    got = llm.tokenize(b"Hi there", add_bos=True, special=False)
    assert got == with_specials, (
        f"adding special tokens: llama.cpp {got}, transformers {with_specials} (the GGUF's "
        f"add_bos/add_eos flags) [{infer_case.id}]")


@pytest.mark.parametrize(("texts", "what"), [(load_prompts(), "the shipped prompts"),
                                             (TRICKY, "tricky strings")])
def test_llamacpp_tokenizes_like_transformers(infer_case, vocab_files, texts, what):
    llm = _vocab_only(vocab_files, infer_case)
    found = _mismatches(llm, infer_case.tokenizer, texts, special=False)
    assert not found, (f"llama.cpp tokenizes {len(found)} of {len(texts)} {what} differently "
                       f"[{infer_case.id}]:\n" + "\n".join(found))


def test_llamacpp_parses_special_tokens_like_transformers(infer_case, vocab_files):
    llm = _vocab_only(vocab_files, infer_case)
    tokenizer = infer_case.tokenizer
    texts = [f"a{token}b" for token in tokenizer.all_special_tokens] + [
        f"{tokenizer.bos_token}Hi{tokenizer.eos_token}"]
    found = _mismatches(llm, tokenizer, texts, special=True)
    assert not found, (f"special tokens in text parse differently [{infer_case.id}]:\n"
                       + "\n".join(found))


def test_llamacpp_detokenizes_the_prompts(infer_case, vocab_files):
    llm = _vocab_only(vocab_files, infer_case)
    for text in (*load_prompts(), *TRICKY):
        ids = infer_case.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert llm.detokenize(ids).decode("utf-8") == text, (
            f"llama.cpp detokenizes {ids} to {llm.detokenize(ids)!r}, not {text!r} "
            f"[{infer_case.id}]")

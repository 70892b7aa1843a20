"""GGUF vocabulary metadata: what is written, and which tokenizers are refused."""

from __future__ import annotations

import pytest
import torch

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed")

from infersuite.formats.errors import FormatError  # noqa: E402
from infersuite.formats.gguf_io import read_gguf, write_gguf  # noqa: E402
from infersuite.formats.gguf_vocab import check_byte_level_bpe  # noqa: E402

BYTE_LEVEL = {"model": {"type": "BPE"}, "normalizer": None,
              "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                                "use_regex": True}}


@pytest.fixture(scope="module")
def llama_tiny():
    from infersuite.models.loader import load_model

    return load_model("llama-tiny", torch.float32, "cpu")


def _keys(loaded, path, tokenizer):
    write_gguf(loaded.model.state_dict(), loaded.model.config, path, gguf.GGMLQuantizationType.F32,
               tokenizer=tokenizer)
    return read_gguf(path).metadata


def test_without_a_tokenizer_no_vocabulary_is_written(llama_tiny, tmp_path):
    metadata = _keys(llama_tiny, tmp_path / "plain.gguf", None)
    assert not [k for k in metadata if k.startswith("tokenizer.")]


def test_the_vocabulary_follows_the_tokenizer(llama_tiny, tmp_path):
    metadata = _keys(llama_tiny, tmp_path / "vocab.gguf", llama_tiny.tokenizer)
    tokenizer = llama_tiny.tokenizer
    assert metadata["tokenizer.ggml.model"] == "gpt2"
    assert metadata["tokenizer.ggml.pre"] == "gpt-2"
    tokens = metadata["tokenizer.ggml.tokens"]
    assert len(tokens) == llama_tiny.model.config.vocab_size
    assert all(tokens[i] == text for text, i in tokenizer.get_vocab().items())
    control = int(gguf.TokenType.CONTROL)
    types = metadata["tokenizer.ggml.token_type"]
    assert [i for i, kind in enumerate(types) if kind == control] == sorted(
        tokenizer.all_special_ids)
    assert metadata["tokenizer.ggml.merges"][:2] == ["h e", "e s"]
    assert (metadata["tokenizer.ggml.bos_token_id"], metadata["tokenizer.ggml.eos_token_id"],
            metadata["tokenizer.ggml.padding_token_id"],
            metadata["tokenizer.ggml.unknown_token_id"]) == (1, 2, 0, 3)
    assert metadata["tokenizer.ggml.add_bos_token"] is False
    assert metadata["tokenizer.ggml.add_eos_token"] is False


@pytest.mark.parametrize(("change", "problem"), [
    ({"model": {"type": "Unigram"}}, "model type 'Unigram' (need 'BPE')"),
    ({"pre_tokenizer": {"type": "Metaspace"}}, "pre-tokenizer 'Metaspace'"),
    ({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True}},
     "add_prefix_space=True"),
    ({"normalizer": {"type": "NFC"}}, "normalizer 'NFC' (need none)"),
])
def test_tokenizers_llamacpp_would_split_differently_are_refused(change, problem):
    with pytest.raises(FormatError, match="supports byte-level BPE tokenizers") as error:
        check_byte_level_bpe({**BYTE_LEVEL, **change})
    assert problem in str(error.value)

"""GGUF tokenizer metadata (``tokenizer.ggml.*``) from a transformers byte-level BPE tokenizer.

llama.cpp refuses a GGUF without a vocabulary ("key not found in model:
tokenizer.ggml.model"). A byte-level BPE tokenizer (GPT-2 style: ByteLevel pre-tokenizer
with the GPT-2 split regex, no normalizer) is written as llama.cpp's ``gpt2`` tokenizer
model with the ``gpt-2`` pre-tokenizer, whose split regex is the one HF's ByteLevel uses.
Tokens keep their byte-level spelling ("Ġthe"); merges are written "left right"; special
tokens are CONTROL. Whether BOS/EOS are added is read from what the tokenizer does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from infersuite.formats.errors import FormatError

TOKENIZER_MODEL = "gpt2"
PRE_TOKENIZER = "gpt-2"  # llama.cpp: LLAMA_VOCAB_PRE_TYPE_GPT2, the GPT-2 split regex


@dataclass(frozen=True)
class GgufVocab:
    """What the ``tokenizer.ggml.*`` keys hold."""

    tokens: list[str]
    token_types: list[int]  # gguf.TokenType values
    merges: list[str]
    special_ids: dict[str, int]  # bos / eos / pad / unk -> id
    add_bos: bool
    add_eos: bool


def _backend_json(tokenizer: Any) -> dict[str, Any]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise FormatError(f"{type(tokenizer).__name__}: GGUF vocabularies are written from a "
                          "fast (tokenizers-backed) tokenizer; load it with AutoTokenizer")
    return dict(json.loads(backend.to_str()))


def check_byte_level_bpe(spec: dict[str, Any]) -> None:
    """FormatError unless the tokenizer is GPT-2 style byte-level BPE."""
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    problems = []
    if model.get("type") != "BPE":
        problems.append(f"model type {model.get('type')!r} (need 'BPE')")
    if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        problems.append(f"pre-tokenizer {pre.get('type')!r} (need ByteLevel with its regex)")
    elif pre.get("add_prefix_space"):
        problems.append("ByteLevel add_prefix_space=True (llama.cpp's gpt-2 adds no space)")
    if spec.get("normalizer") is not None:
        problems.append(f"normalizer {spec['normalizer'].get('type')!r} (need none)")
    if problems:
        raise FormatError("the GGUF vocabulary writer supports byte-level BPE tokenizers "
                          "(llama.cpp tokenizer model 'gpt2', pre-tokenizer 'gpt-2') only; "
                          "this tokenizer has " + "; ".join(problems))


def _merges(spec: dict[str, Any]) -> list[str]:
    merges = []
    for merge in spec["model"].get("merges") or []:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        if " " in left or " " in right:
            raise FormatError(f"merge {merge!r} holds a space; byte-level BPE spells spaces "
                              "as 'Ġ', so this tokenizer is not byte-level")
        merges.append(f"{left} {right}")
    return merges


def _tokens(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    import gguf

    by_id = {index: text for text, index in tokenizer.get_vocab().items()}
    too_big = sorted(i for i in by_id if i >= vocab_size)
    if too_big:
        raise FormatError(f"tokenizer ids {too_big[:5]} are >= the model's vocab_size "
                          f"{vocab_size}; the tokenizer does not belong to this model")
    added = getattr(tokenizer, "added_tokens_decoder", {})
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(int(gguf.TokenType.UNUSED))
        elif index in added:
            tokens.append(by_id[index])
            special = getattr(added[index], "special", True)
            types.append(int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED))
        else:
            tokens.append(by_id[index])
            types.append(int(gguf.TokenType.NORMAL))
    return tokens, types


def _special_ids(tokenizer: Any, config: Any) -> dict[str, int]:
    found = {}
    for kind in ("bos", "eos", "pad", "unk"):
        value = getattr(tokenizer, f"{kind}_token_id", None)
        if value is None:
            value = getattr(config, f"{kind}_token_id", None)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is not None:
            found[kind] = int(value)
    return found


def _adds(tokenizer: Any, special: dict[str, int]) -> tuple[bool, bool]:
    """(add_bos, add_eos) as the tokenizer does them on plain text."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    add_bos = len(full) > len(plain) and full[0] == special.get("bos")
    add_eos = len(full) > len(plain) and full[-1] == special.get("eos")
    return add_bos, add_eos


def build_vocab(tokenizer: Any, config: Any) -> GgufVocab:
    """The GGUF vocabulary of `tokenizer` for a model with `config.vocab_size` rows."""
    spec = _backend_json(tokenizer)
    check_byte_level_bpe(spec)
    tokens, types = _tokens(tokenizer, int(config.vocab_size))
    special = _special_ids(tokenizer, config)
    add_bos, add_eos = _adds(tokenizer, special)
    return GgufVocab(tokens, types, _merges(spec), special, add_bos, add_eos)


def add_vocab(writer: Any, vocab: GgufVocab) -> None:
    """Write the ``tokenizer.ggml.*`` keys with the gguf package's writer helpers."""
    writer.add_tokenizer_model(TOKENIZER_MODEL)
    writer.add_tokenizer_pre(PRE_TOKENIZER)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges(vocab.merges)
    for kind, index in vocab.special_ids.items():
        getattr(writer, f"add_{kind}_token_id")(index)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)

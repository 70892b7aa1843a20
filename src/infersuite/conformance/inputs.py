"""Inputs for conformance checks: the shipped prompts as token ids."""

from __future__ import annotations

import json
import random
from functools import cache
from typing import Any

from infersuite.fixtures_path import fixtures_dir


@cache
def load_prompts() -> tuple[str, ...]:
    data = json.loads((fixtures_dir() / "prompts.json").read_text())
    return tuple(data["prompts"])


def build_prompt_ids(tokenizer: Any | None, vocab_size: int, seed: int = 7) -> list[list[int]]:
    """Token ids of the shipped prompts; seeded random ids of the same lengths
    when there is no tokenizer (or its ids do not fit the model's vocabulary)."""
    prompts = load_prompts()
    if tokenizer is not None:
        encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        if all(max(ids) < vocab_size for ids in encoded):
            return encoded
    rng = random.Random(seed)
    lengths = [2, 6, 11, 19, 9, 23][: len(prompts)]
    # Skip the lowest ids: they are usually special tokens.
    low = min(16, vocab_size - 1)
    return [[rng.randrange(low, vocab_size) for _ in range(n)] for n in lengths]


def build_calibration_ids(tokenizer: Any | None, vocab_size: int, count: int = 12,
                          seed: int = 11, model_name: str = "") -> list[list[int]]:
    """Token ids to calibrate a quantizer on, never the inputs the checks judge: `count`
    of the shipped encoder sentences; seeded random ids when there is no tokenizer that
    fits; for the adder, 4 x `count` prompts of its training problems (a prompt is a few
    characters; its accuracy is judged on the held-out ones)."""
    if model_name == "adder" and tokenizer is not None:
        from infersuite.models.adder import format_prompt, train_problems

        problems = random.Random(seed).sample(train_problems(), 4 * count)
        return [tokenizer(format_prompt(a, b))["input_ids"] for a, b in problems]
    sentences = json.loads((fixtures_dir() / "sentences.json").read_text())["sentences"]
    chosen = sentences[:count]
    if tokenizer is not None:
        try:
            encoded = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in chosen]
        except Exception:  # a vocabulary without English words (the adder's) - noqa: BLE001
            encoded = []
        if encoded and all(ids and max(ids) < vocab_size for ids in encoded):
            return encoded
    rng = random.Random(seed)
    low = min(16, vocab_size - 1)
    return [[rng.randrange(low, vocab_size) for _ in range(4 + i % 9)] for i in range(count)]

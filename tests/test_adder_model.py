"""The shipped addition Llama: loads offline, splits cleanly, still matches its golden answers."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from infersuite.models.adder import (
    AccuracyResult,
    all_problems,
    compare_with_golden,
    compute_logits_fingerprint,
    default_adder_dir,
    evaluate_accuracy,
    format_prompt,
    heldout_problems,
    load_adder,
    load_golden,
    split_problems,
    train_problems,
)

MIN_HELDOUT_ACCURACY = 0.98
CORRUPTION_SUBSET_SIZE = 200


@pytest.fixture(scope="module")
def adder() -> tuple[Any, Any]:
    torch.set_num_threads(2)
    return load_adder(dtype=torch.float32, device="cpu")


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return load_golden()


@pytest.fixture(scope="module")
def fp32_result(adder: tuple[Any, Any]) -> AccuracyResult:
    model, tokenizer = adder
    return evaluate_accuracy(model, tokenizer, heldout_problems())


def _answers_by_prompt(result: AccuracyResult) -> dict[str, str]:
    prompts = [format_prompt(a, b) for a, b in heldout_problems()]
    return dict(zip(prompts, result.answers, strict=True))


def test_loads_offline_with_auto_classes() -> None:
    path = default_adder_dir()
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    assert isinstance(model, LlamaForCausalLM)
    assert model.dtype == torch.float32
    assert tokenizer.eos_token == "<eos>"
    assert tokenizer.pad_token == "<pad>"
    size_bytes = (path / "model.safetensors").stat().st_size
    assert size_bytes < 8 * 2**20, f"model.safetensors is {size_bytes} bytes; keep it a few MB"


def test_tokenizer_round_trip_is_one_token_per_character(adder: tuple[Any, Any]) -> None:
    _, tokenizer = adder
    text = "37+48=85"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert len(ids) == len(text) + 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    padded = tokenizer(["1+2=", "37+48="], padding=True)["input_ids"]
    assert padded[0][:2] == [tokenizer.pad_token_id] * 2, "generation needs left padding"


def test_split_is_disjoint_complete_and_deterministic() -> None:
    train, heldout = split_problems()
    assert set(train).isdisjoint(heldout)
    assert sorted(train + heldout) == all_problems()
    assert len(heldout) == len(all_problems()) // 10
    assert (train_problems(), heldout_problems()) == split_problems()


def test_golden_covers_exactly_the_heldout_set(golden: dict[str, Any]) -> None:
    assert list(golden["answers"]) == [format_prompt(a, b) for a, b in heldout_problems()]


def test_fp32_greedy_reaches_accuracy_floor(fp32_result: AccuracyResult) -> None:
    assert fp32_result.accuracy >= MIN_HELDOUT_ACCURACY, fp32_result.wrong[:10]


def test_fp32_greedy_matches_golden(
    adder: tuple[Any, Any], golden: dict[str, Any], fp32_result: AccuracyResult
) -> None:
    model, tokenizer = adder
    comparison = compare_with_golden(
        golden, _answers_by_prompt(fp32_result), compute_logits_fingerprint(model, tokenizer)
    )
    assert comparison.ok, comparison.render()
    assert comparison.max_abs_logit_diff <= 1e-5


def test_corrupted_weights_fail_the_golden_check(golden: dict[str, Any]) -> None:
    model, tokenizer = load_adder()
    with torch.no_grad():
        model.model.layers[0].self_attn.q_proj.weight.zero_()
    # A fixed subset keeps this test fast; zeroing q_proj breaks far more than 1 in 200.
    problems = heldout_problems()[:CORRUPTION_SUBSET_SIZE]
    result = evaluate_accuracy(model, tokenizer, problems)
    prompts = [format_prompt(a, b) for a, b in problems]
    subset_golden = {**golden, "answers": {p: golden["answers"][p] for p in prompts}}
    answers = dict(zip(prompts, result.answers, strict=True))
    comparison = compare_with_golden(
        subset_golden, answers, compute_logits_fingerprint(model, tokenizer)
    )
    assert not comparison.ok
    assert comparison.logit_mismatches
    assert comparison.answer_mismatches, "zeroing a q_proj should change some greedy answers"

"""Fault injection for the accuracy gates: corrupted adder weights must fail, naming the damage."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import torch

from infersuite.conformance.accuracy import (
    AccuracyGateError,
    check_accuracy_gate,
    check_matches_golden,
    check_same_answers,
    compute_answer_changes,
    score_answers,
)
from infersuite.models.adder import (
    DEFAULT_LOGITS_ATOL,
    AccuracyResult,
    Problem,
    compute_logits_fingerprint,
    evaluate_accuracy,
    format_prompt,
    heldout_problems,
    load_adder,
    load_golden,
)

# Every 5th held-out problem: 200 prompts spread over all operands, one fast batch.
SUBSET_STRIDE = 5
V_PROJ = "model.layers.0.self_attn.v_proj.weight"
DOWN_PROJ = "model.layers.0.mlp.down_proj.weight"


@pytest.fixture(scope="module")
def adder() -> tuple[Any, Any]:
    return load_adder(dtype=torch.float32, device="cpu")


@pytest.fixture(scope="module")
def subset() -> list[Problem]:
    return heldout_problems()[::SUBSET_STRIDE]


@pytest.fixture(scope="module")
def reference(adder: tuple[Any, Any], subset: list[Problem]) -> AccuracyResult:
    model, tokenizer = adder
    return evaluate_accuracy(model, tokenizer, subset)


def _subset_golden(subset: list[Problem]) -> dict[str, Any]:
    golden = load_golden()
    answers = {p: golden["answers"][p] for p in (format_prompt(a, b) for a, b in subset)}
    return {**golden, "answers": answers}


def _int8_round_trip(weight: torch.Tensor, scale_error: float) -> torch.Tensor:
    """Symmetric per-tensor int8 quantize, then dequantize with the scale times scale_error
    (1.0: a correct quantizer; 1.5: one that applies the wrong scale)."""
    scale = weight.abs().max() / 127
    return torch.clamp(torch.round(weight / scale), -127, 127) * scale * scale_error


def _with_weight(model: Any, name: str, weight: torch.Tensor) -> Any:
    corrupted = copy.deepcopy(model)
    corrupted.load_state_dict({**model.state_dict(), name: weight})
    return corrupted


def _answers_by_prompt(subset: list[Problem], result: AccuracyResult) -> dict[str, str]:
    return {format_prompt(a, b): got for (a, b), got in zip(subset, result.answers, strict=True)}


def test_correct_int8_scale_passes_the_gate(adder, subset, reference):
    """Control: the same int8 round trip with the right scale stays within 1 point."""
    model, tokenizer = adder
    weight = _int8_round_trip(model.state_dict()[V_PROJ], scale_error=1.0)
    result = evaluate_accuracy(_with_weight(model, V_PROJ, weight), tokenizer, subset)
    check_accuracy_gate("int8 v_proj (right scale)", subset, result, reference, 1.0)


def test_wrong_int8_scale_fails_the_gate_naming_changed_answers(adder, subset, reference):
    model, tokenizer = adder
    weight = _int8_round_trip(model.state_dict()[V_PROJ], scale_error=1.5)
    result = evaluate_accuracy(_with_weight(model, V_PROJ, weight), tokenizer, subset)
    prompts = [format_prompt(a, b) for a, b in subset]
    changes = compute_answer_changes(prompts, reference.answers, result.answers)
    assert len(changes) > 2, "the injected fault should change several answers"
    with pytest.raises(AccuracyGateError) as failure:
        check_accuracy_gate("int8 v_proj (scale x1.5)", subset, result, reference, 1.0)
    message = str(failure.value)
    assert f"{len(changes)} of {len(subset)} answers changed vs float32" in message
    prompt, expected, got = changes[0]
    assert f"{prompt!r} expected {expected!r} got {got!r}" in message


def test_wrong_int8_scale_fails_the_golden_comparison(adder, subset):
    model, tokenizer = adder
    weight = _int8_round_trip(model.state_dict()[V_PROJ], scale_error=1.5)
    corrupted = _with_weight(model, V_PROJ, weight)
    result = evaluate_accuracy(corrupted, tokenizer, subset)
    golden = _subset_golden(subset)
    changed = [(p, golden["answers"][p], a) for p, a in _answers_by_prompt(subset, result).items()
               if golden["answers"][p] != a]
    with pytest.raises(AccuracyGateError) as failure:
        check_matches_golden("scaled v_proj", golden, _answers_by_prompt(subset, result),
                             compute_logits_fingerprint(corrupted, tokenizer), DEFAULT_LOGITS_ATOL)
    message = str(failure.value)
    assert f"{len(changed)} of {len(subset)} answers changed vs golden.json" in message
    assert f"{changed[0][0]!r} expected {changed[0][1]!r} got {changed[0][2]!r}" in message


def test_five_percent_scaled_layer_is_caught_by_the_fingerprint(adder, subset):
    """x1.05 on one MLP layer changes no answer here, but the 1e-5 fingerprint sees it."""
    model, tokenizer = adder
    corrupted = _with_weight(model, DOWN_PROJ, model.state_dict()[DOWN_PROJ] * 1.05)
    result = evaluate_accuracy(corrupted, tokenizer, subset)
    with pytest.raises(AccuracyGateError) as failure:
        check_matches_golden("down_proj x1.05", _subset_golden(subset),
                             _answers_by_prompt(subset, result),
                             compute_logits_fingerprint(corrupted, tokenizer), DEFAULT_LOGITS_ATOL)
    message = str(failure.value)
    assert re.search(r"\d+ of 200 answers changed vs golden\.json", message)
    match = re.search(r"(\d+) fingerprint logit\(s\) off by more than 1e-05", message)
    assert match, message
    assert int(match.group(1)) > 0, message


def test_gate_messages_without_a_model():
    problems = [(1, 1), (2, 2), (3, 3), (4, 4)]
    reference = score_answers(problems, ["2", "4", "6", "8"])
    result = score_answers(problems, ["2", "5", "6", "9"])
    with pytest.raises(AccuracyGateError, match=re.escape(
            "accuracy 50.00% (2/4) is -50.00 points vs float32 100.00% (4/4)")) as failure:
        check_accuracy_gate("fake", problems, result, reference, max_drop_points=1.0)
    assert "2 of 4 answers changed vs float32, e.g. (prompt, expected, got): " \
           "'2+2=' expected '4' got '5'; '4+4=' expected '8' got '9'" in str(failure.value)
    assert check_accuracy_gate("fake", problems, reference, reference, 0.0) == 0.0
    with pytest.raises(AccuracyGateError, match=r"fake: 2 of 4 answers differ from torch float32"):
        check_same_answers("fake", problems, reference.answers, result.answers)
    check_same_answers("fake", problems, reference.answers, reference.answers)


def test_a_drop_of_exactly_the_gate_passes_and_one_answer_more_fails():
    """989/1000 vs 999/1000 is a 1-point drop: in floats it is 1.0000000000000009, which a
    "drop <= 1 point" gate must not fail; 988/1000 is over it."""
    problems = [(a, 0) for a in range(1000)]
    truth = [str(a) for a in range(1000)]
    reference = score_answers(problems, ["x", *truth[1:]])  # 999 right
    at_gate = score_answers(problems, ["x"] * 11 + truth[11:])  # 989 right
    assert check_accuracy_gate("at", problems, at_gate, reference, 1.0) == pytest.approx(-1.0)
    over = score_answers(problems, ["x"] * 12 + truth[12:])  # 988 right
    with pytest.raises(AccuracyGateError, match=r"-1\.10 points"):
        check_accuracy_gate("over", problems, over, reference, 1.0)

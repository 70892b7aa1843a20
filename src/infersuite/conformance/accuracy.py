"""Task accuracy of the adder across runtimes: int8 quantizers, ORT greedy loops, accuracy gates."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.conformance.compare import ConformanceError
from infersuite.models.adder import (
    MAX_ANSWER_TOKENS,
    AccuracyResult,
    Problem,
    compare_with_golden,
    format_answer,
    format_prompt,
)

if TYPE_CHECKING:
    import numpy as np
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from infersuite.engines.onnx import OrtDecoder

EXAMPLES_SHOWN = 5
CALIBRATION_SEED = 20240611


class AccuracyGateError(ConformanceError):
    """Task answers or accuracy outside their documented gate."""


# --- scoring and gates -------------------------------------------------------------------------


def score_answers(problems: Sequence[Problem], answers: Sequence[str]) -> AccuracyResult:
    """Exact-match AccuracyResult of ``answers`` (aligned with ``problems``)."""
    if len(answers) != len(problems):
        raise ValueError(f"{len(answers)} answers for {len(problems)} problems")
    prompts = [format_prompt(a, b) for a, b in problems]
    expected = [format_answer(a, b) for a, b in problems]
    wrong = [(p, e, g) for p, e, g in zip(prompts, expected, answers, strict=True) if e != g]
    total = len(problems)
    correct = total - len(wrong)
    return AccuracyResult(correct, total, correct / total if total else 0.0, list(answers), wrong)


def compute_answer_changes(prompts: Sequence[str], expected: Sequence[str],
                           got: Sequence[str]) -> list[tuple[str, str, str]]:
    """(prompt, expected, got) wherever two aligned answer lists differ."""
    return [(p, e, g) for p, e, g in zip(prompts, expected, got, strict=True) if e != g]


def render_examples(changes: Sequence[tuple[str, str, str]], limit: int = EXAMPLES_SHOWN) -> str:
    shown = "; ".join(f"{p!r} expected {e!r} got {g!r}" for p, e, g in changes[:limit])
    more = f" (+{len(changes) - limit} more)" if len(changes) > limit else ""
    return f"e.g. (prompt, expected, got): {shown}{more}"


def render_accuracy(result: AccuracyResult) -> str:
    return f"{result.accuracy:.2%} ({result.correct}/{result.total})"


def render_accuracy_line(label: str, result: AccuracyResult,
                         reference: AccuracyResult | None = None, gate: str = "") -> str:
    """``accuracy LABEL: 99.90% (999/1000); Δ vs float32 +0.00 pt; gate ...``."""
    line = f"accuracy {label}: {render_accuracy(result)}"
    if reference is not None:
        line += f"; Δ vs float32 {compute_delta_points(result, reference):+.2f} pt"
    return f"{line}; gate: {gate}" if gate else line


def compute_delta_points(result: AccuracyResult, reference: AccuracyResult) -> float:
    """Accuracy difference in percentage points (negative: worse than the reference)."""
    return 100.0 * (result.accuracy - reference.accuracy)


def check_min_accuracy(label: str, result: AccuracyResult, min_accuracy: float) -> None:
    """Raise when exact-match accuracy is below ``min_accuracy``, naming the misses."""
    if result.accuracy < min_accuracy:
        raise AccuracyGateError(
            f"{label}: accuracy {render_accuracy(result)} is below the gate {min_accuracy:.1%}; "
            f"{len(result.wrong)} of {result.total} answers wrong, {render_examples(result.wrong)}")


def check_same_answers(label: str, problems: Sequence[Problem], expected: Sequence[str],
                       got: Sequence[str], reference_label: str = "torch float32") -> None:
    """Raise unless every answer equals the reference's, naming how many and which differ."""
    prompts = [format_prompt(a, b) for a, b in problems]
    changes = compute_answer_changes(prompts, expected, got)
    if changes:
        raise AccuracyGateError(
            f"{label}: {len(changes)} of {len(prompts)} answers differ from {reference_label} "
            f"(gate: identical answers); {render_examples(changes)}")


def check_accuracy_gate(label: str, problems: Sequence[Problem], result: AccuracyResult,
                        reference: AccuracyResult, max_drop_points: float,
                        min_accuracy: float = 0.0) -> float:
    """Raise when accuracy falls more than ``max_drop_points`` below ``reference`` or under
    ``min_accuracy``; the message counts the answers that changed. Returns Δ in points."""
    from fractions import Fraction

    delta = compute_delta_points(result, reference)
    # in exact fractions: 989/1000 vs 999/1000 is a drop of 1 point, not 1.0000000000000009
    drop = 100 * (Fraction(reference.correct, reference.total)
                  - Fraction(result.correct, result.total))
    if (drop <= Fraction(max_drop_points).limit_denominator(10**6)
            and result.accuracy >= min_accuracy):
        return delta
    prompts = [format_prompt(a, b) for a, b in problems]
    changes = compute_answer_changes(prompts, reference.answers, result.answers)
    raise AccuracyGateError(
        f"{label}: accuracy {render_accuracy(result)} is {delta:+.2f} points vs float32 "
        f"{render_accuracy(reference)}; gate: drop <= {max_drop_points:g} points and accuracy "
        f">= {min_accuracy:.1%}; {len(changes)} of {len(prompts)} answers changed vs float32, "
        f"{render_examples(changes)}")


def check_matches_golden(label: str, golden: dict[str, Any], answers: dict[str, str],
                         fingerprint: dict[str, Any], logits_atol: float) -> None:
    """Raise unless answers equal golden.json's exactly and the fingerprint is within atol."""
    comparison = compare_with_golden(golden, answers, fingerprint, logits_atol)
    if comparison.ok:
        return
    changes = comparison.answer_mismatches
    examples = f"; {render_examples(changes)}" if changes else ""
    raise AccuracyGateError(
        f"{label}: {len(changes)} of {len(golden['answers'])} answers changed vs golden.json"
        f"{examples}; {len(comparison.logit_mismatches)} fingerprint logit(s) off by more than "
        f"{logits_atol:g} (max |diff| {comparison.max_abs_logit_diff:.3g})\n"
        f"{comparison.render(limit=EXAMPLES_SHOWN)}")


# --- torch dynamic int8 --------------------------------------------------------------------------


def quantize_dynamic_int8(model: PreTrainedModel) -> tuple[torch.nn.Module, int]:
    """A copy with every nn.Linear as torch's dynamic int8 Linear (CPU only); returns
    (model, number of quantized Linear modules)."""
    import copy

    import torch

    quantized = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(model).cpu(), {torch.nn.Linear}, dtype=torch.qint8)
    dynamic_linear = torch.ao.nn.quantized.dynamic.Linear
    n_quantized = sum(isinstance(m, dynamic_linear) for m in quantized.modules())
    return quantized, n_quantized


def generate_answers_engine(engine: Any, tokenizer: PreTrainedTokenizerBase,
                            prompts: Sequence[str], batch_size: int = 500) -> list[str]:
    """Greedy answers from any engine. Its generate_greedy never picks EOS (fixed length),
    so an answer ends at the first step whose raw logits rank EOS first: up to there the
    engine's tokens are exactly what greedy decoding with EOS allowed picks."""
    from infersuite.engines.hf import pad_left

    rows = [tokenizer(p)["input_ids"] for p in prompts]
    if "padded_batch" not in engine.capabilities:
        batch_size = 1
    answers: list[str] = []
    for start in range(0, len(rows), batch_size):
        ids, mask = pad_left(rows[start:start + batch_size], engine.pad_id)
        tokens, logits = engine.generate_greedy(ids, mask, MAX_ANSWER_TOKENS)
        for row_tokens, row_logits in zip(tokens.tolist(), logits, strict=True):
            ranked_eos = (row_logits.argmax(-1) == tokenizer.eos_token_id).nonzero()
            stop = int(ranked_eos[0, 0]) if ranked_eos.numel() else len(row_tokens)
            answers.append(str(tokenizer.decode(row_tokens[:stop], skip_special_tokens=True)))
    return answers


# --- onnxruntime greedy loops ------------------------------------------------------------------


def _decode_rows(tokenizer: PreTrainedTokenizerBase, rows: list[list[int]]) -> list[str]:
    eos = tokenizer.eos_token_id
    answers: list[str] = []
    for row in rows:
        text = tokenizer.decode(row[: row.index(eos)] if eos in row else row,
                                skip_special_tokens=True)
        answers.append(str(text))
    return answers


def _batches(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
             batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    import numpy as np

    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start:start + batch_size]), return_tensors="np",
                          padding=True)
        yield (batch["input_ids"].astype(np.int64), batch["attention_mask"].astype(np.int64))


def generate_answers_ort_recompute(session: Any, tokenizer: PreTrainedTokenizerBase,
                                   prompts: Sequence[str], batch_size: int = 500) -> list[str]:
    """Greedy answers from a prefill graph, recomputing the whole sequence each step."""
    import numpy as np

    answers: list[str] = []
    for ids, mask in _batches(tokenizer, prompts, batch_size):
        start = ids.shape[1]
        for _ in range(MAX_ANSWER_TOKENS):
            logits = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
            chosen = logits[:, -1, :].argmax(-1)[:, None].astype(np.int64)
            ids = np.concatenate([ids, chosen], axis=1)
            mask = np.concatenate([mask, np.ones_like(chosen)], axis=1)
        answers += _decode_rows(tokenizer, ids[:, start:].tolist())
    return answers


def generate_answers_ort_kv(decoder: OrtDecoder, tokenizer: PreTrainedTokenizerBase,
                            prompts: Sequence[str], batch_size: int = 500) -> list[str]:
    """Greedy answers through the decode graph with its KV cache (OrtDecoder.greedy)."""
    import torch

    answers: list[str] = []
    for ids, mask in _batches(tokenizer, prompts, batch_size):
        tokens, _ = decoder.greedy(torch.from_numpy(ids), torch.from_numpy(mask),
                                   MAX_ANSWER_TOKENS)
        answers += _decode_rows(tokenizer, tokens.tolist())
    return answers


# --- onnxruntime quantization ------------------------------------------------------------------


def sample_calibration_problems(train: Sequence[Problem], n: int,
                                seed: int = CALIBRATION_SEED) -> list[Problem]:
    """A seeded sample of ``n`` training problems (never the held-out set)."""
    return random.Random(seed).sample(list(train), n)


def make_calibration_reader(tokenizer: PreTrainedTokenizerBase, problems: Sequence[Problem],
                            batch_size: int = 64) -> Any:
    """An onnxruntime CalibrationDataReader feeding input_ids/attention_mask of
    ``"a+b=sum"`` (teacher-forced, so answer positions are calibrated too), left padded."""
    from onnxruntime.quantization import CalibrationDataReader

    texts = [format_prompt(a, b) + format_answer(a, b) for a, b in problems]
    feeds = [{"input_ids": ids, "attention_mask": mask}
             for ids, mask in _batches(tokenizer, texts, batch_size)]

    class TrainingProblemsReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

        def rewind(self) -> None:
            self._feeds = iter(feeds)

    return TrainingProblemsReader()


def find_weight_matmuls(path: Path) -> list[str]:
    """Names of MatMul nodes with an initializer input: the model's Linear layers (not
    attention's activation x activation products nor the RoPE angle product)."""
    import onnx

    graph = onnx.load(str(path)).graph
    weights = {init.name for init in graph.initializer}
    return [n.name for n in graph.node
            if n.op_type == "MatMul" and any(i in weights for i in n.input)]


def count_ops(path: Path, op_types: Sequence[str]) -> int:
    import onnx

    return sum(n.op_type in op_types for n in onnx.load(str(path)).graph.node)


def count_qdq_matmuls(path: Path) -> int:
    """MatMul nodes whose every input comes out of a DequantizeLinear (QDQ-quantized)."""
    import onnx

    graph = onnx.load(str(path)).graph
    dequantized = {out for n in graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    return sum(n.op_type == "MatMul" and all(i in dequantized for i in n.input)
               for n in graph.node)


@dataclass(frozen=True)
class StaticQuantization:
    method: str
    path: Path
    quantize_s: float
    n_quantized_matmuls: int


def quantize_static_int8(source: Path, target: Path, reader: Any,
                         method_name: str) -> StaticQuantization:
    """QDQ int8 (uint8 activations, int8 weights, per tensor) of the weight MatMuls only.

    Quantizing every op also quantizes the attention-mask path, whose -inf/finfo.min
    values wreck MinMax scales and make the histogram calibrators raise."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    start = time.perf_counter()
    quantize_static(str(source), str(target), reader,
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=False,
                    op_types_to_quantize=["MatMul"], nodes_to_quantize=find_weight_matmuls(source),
                    calibrate_method=getattr(CalibrationMethod, method_name))
    return StaticQuantization(method_name, target, time.perf_counter() - start,
                              count_qdq_matmuls(target))


def quantize_dynamic_onnx(source: Path, target: Path) -> int:
    """onnxruntime dynamic int8 (weights int8, activations quantized per call); returns how
    many integer MatMul nodes the result has."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return count_ops(target, ("MatMulInteger", "DynamicQuantizeMatMul", "QLinearMatMul"))


# --- report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationRow:
    method: str
    result: AccuracyResult | None
    delta_points: float | None
    note: str  # quantize time and node count, or why the row was skipped


def render_calibration_table(rows: Sequence[CalibrationRow], gate: str) -> str:
    lines = [f"{'method':<11} {'accuracy':<18} {'Δ vs fp32':>10}  note (gate: {gate})"]
    for row in rows:
        if row.result is None or row.delta_points is None:
            lines.append(f"{row.method:<11} {'skipped':<18} {'—':>10}  {row.note}")
        else:
            lines.append(f"{row.method:<11} {render_accuracy(row.result):<18} "
                         f"{row.delta_points:>+7.2f} pt  {row.note}")
    return "\n".join(lines)

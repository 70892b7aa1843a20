"""Integer-addition task and its tiny Llama: problems, split, tokenizer, loading, scoring."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.fixtures_path import FIXTURES_ENV, fixtures_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

OPERAND_MAX = 99
"""Operands range over 0..OPERAND_MAX on both sides of the ``+``."""
HELDOUT_FRACTION = 0.1
SPLIT_SEED = 20240607
PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN)
CHARACTERS = "0123456789+="
MAX_ANSWER_TOKENS = len(str(2 * OPERAND_MAX)) + 1  # digits plus the EOS token
FIXTURES_ENV_VAR = FIXTURES_ENV
FINGERPRINT_PROMPTS = ("0+0=", "7+5=", "37+48=", "99+99=", "50+50=", "12+", "9")
DEFAULT_LOGITS_ATOL = 1e-5

Problem = tuple[int, int]


# --- problems and the train / held-out split -------------------------------------------------


def all_problems() -> list[Problem]:
    """Every pair (a, b) with 0 <= a, b <= OPERAND_MAX, in row-major order."""
    return [(a, b) for a in range(OPERAND_MAX + 1) for b in range(OPERAND_MAX + 1)]


def split_problems() -> tuple[list[Problem], list[Problem]]:
    """Return (train, held_out): a fixed seeded shuffle, the first HELDOUT_FRACTION held out."""
    problems = all_problems()
    random.Random(SPLIT_SEED).shuffle(problems)
    heldout_count = round(len(problems) * HELDOUT_FRACTION)
    return sorted(problems[heldout_count:]), sorted(problems[:heldout_count])


def train_problems() -> list[Problem]:
    """Problems the model may see during training."""
    return split_problems()[0]


def heldout_problems() -> list[Problem]:
    """Problems never shown during training, sorted."""
    return split_problems()[1]


def format_prompt(a: int, b: int) -> str:
    """The text the model is given: ``"37+48="``."""
    return f"{a}+{b}="


def format_answer(a: int, b: int) -> str:
    """The text the model must produce after the prompt (EOS not included): ``"85"``."""
    return str(a + b)


# --- tokenizer -------------------------------------------------------------------------------


def build_tokenizer() -> PreTrainedTokenizerBase:
    """A character-level tokenizer: one token per character, ``<bos>`` prepended, left padding."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=None))
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", special_tokens=[(BOS_TOKEN, vocab[BOS_TOKEN])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        padding_side="left",
    )


# --- locating and loading the shipped model --------------------------------------------------


def default_adder_dir() -> Path:
    """``$INFERSUITE_FIXTURES/adder`` when the variable is set, else the package's data/adder."""
    return fixtures_dir() / "adder"


def _resolve_adder_dir(path: str | os.PathLike[str] | None) -> Path:
    adder_dir = Path(path) if path is not None else default_adder_dir()
    if not (adder_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"adder model not found: {str(adder_dir)!r} has no config.json; pass the directory "
            f"made by `python scripts/train_adder.py --out DIR`, or set {FIXTURES_ENV_VAR} to a "
            "fixtures directory that contains adder/"
        )
    return adder_dir


def load_adder(
    path: str | os.PathLike[str] | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load (model, tokenizer) from ``path`` (default: the shipped fixture), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adder_dir = _resolve_adder_dir(path)
    model = AutoModelForCausalLM.from_pretrained(adder_dir, dtype=dtype or torch.float32)
    torch.nn.Module.to(model, device).eval()
    tokenizer = AutoTokenizer.from_pretrained(adder_dir)
    tokenizer.padding_side = "left"
    return model, tokenizer


# --- greedy answers and accuracy -------------------------------------------------------------


@dataclass(frozen=True)
class AccuracyResult:
    """Exact-match score; ``wrong`` holds (prompt, expected, got) for every miss."""

    correct: int
    total: int
    accuracy: float
    answers: list[str] = field(repr=False)
    wrong: list[tuple[str, str, str]]


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    batch_size: int = 500,
    device: str | torch.device | None = None,
) -> list[str]:
    """Greedy-decode each prompt (batched, left-padded) and return the text before EOS."""
    import torch

    device = device if device is not None else model.device
    # Typed as Any: mypy resolves model.generate through nn.Module.__getattr__ as a Tensor.
    generate: Any = model.generate
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(
            list(prompts[start : start + batch_size]), return_tensors="pt", padding=True
        )
        batch = batch.to(device)
        with torch.inference_mode():
            output_ids = generate(
                **batch,
                do_sample=False,
                max_new_tokens=MAX_ANSWER_TOKENS,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_ids = output_ids[:, batch["input_ids"].shape[1] :].tolist()
        answers.extend(_decode_until_eos(tokenizer, ids) for ids in new_ids)
    return answers


def _decode_until_eos(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    if tokenizer.eos_token_id in ids:
        ids = ids[: ids.index(tokenizer.eos_token_id)]
    return str(tokenizer.decode(ids, skip_special_tokens=True))


def evaluate_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    problems: Sequence[Problem],
    batch_size: int = 500,
    device: str | torch.device | None = None,
) -> AccuracyResult:
    """Exact-match accuracy of greedy answers on ``problems``."""
    prompts = [format_prompt(a, b) for a, b in problems]
    answers = generate_answers(model, tokenizer, prompts, batch_size=batch_size, device=device)
    expected = [format_answer(a, b) for a, b in problems]
    wrong = [(p, e, g) for p, e, g in zip(prompts, expected, answers, strict=True) if e != g]
    total = len(problems)
    correct = total - len(wrong)
    return AccuracyResult(correct, total, correct / total if total else 0.0, answers, wrong)


# --- logits fingerprint and golden file ------------------------------------------------------


def compute_logits_fingerprint(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> dict[str, Any]:
    """Float32 last-position logits and their argmax for each of FINGERPRINT_PROMPTS."""
    import torch

    batch = tokenizer(list(FINGERPRINT_PROMPTS), return_tensors="pt", padding=True)
    with torch.inference_mode():
        logits = model(**batch.to(model.device)).logits[:, -1, :].float().cpu()
    return {
        "prompts": list(FINGERPRINT_PROMPTS),
        "last_logits": logits.tolist(),
        "argmax_ids": logits.argmax(dim=-1).tolist(),
    }


def compute_golden(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """The golden record: the model's answer to every held-out prompt plus its fingerprint."""
    problems = heldout_problems()
    result = evaluate_accuracy(model, tokenizer, problems)
    prompts = [format_prompt(a, b) for a, b in problems]
    return {
        "format_version": 1,
        "heldout_accuracy": result.accuracy,
        "answers": dict(zip(prompts, result.answers, strict=True)),
        "fingerprint": compute_logits_fingerprint(model, tokenizer),
    }


def load_golden(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read golden.json from the adder directory ``path`` (default: the shipped fixture)."""
    golden_path = _resolve_adder_dir(path) / "golden.json"
    with golden_path.open(encoding="utf-8") as handle:
        golden: dict[str, Any] = json.load(handle)
    return golden


def save_golden(golden: dict[str, Any], adder_dir: str | os.PathLike[str]) -> Path:
    """Write golden.json (insertion order, stable formatting) into ``adder_dir``."""
    golden_path = Path(adder_dir) / "golden.json"
    golden_path.write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")
    return golden_path


@dataclass(frozen=True)
class GoldenComparison:
    """Differences from golden.json; ``ok`` when there are none."""

    answer_mismatches: list[tuple[str, str, str]]
    """(prompt, golden answer, actual answer)."""
    logit_mismatches: list[str]
    """Human-readable: which prompt, which token id, golden vs actual, by how much."""
    max_abs_logit_diff: float

    @property
    def ok(self) -> bool:
        return not self.answer_mismatches and not self.logit_mismatches

    def render(self, limit: int = 10) -> str:
        """A short report for an assertion message."""
        lines = [f"{len(self.answer_mismatches)} answer(s) differ from golden.json"]
        lines += [f"  {p!r}: golden {g!r}, got {a!r}" for p, g, a in self.answer_mismatches[:limit]]
        lines.append(
            f"{len(self.logit_mismatches)} fingerprint difference(s); "
            f"max |logit diff| = {self.max_abs_logit_diff:.3g}"
        )
        lines += [f"  {line}" for line in self.logit_mismatches[:limit]]
        return "\n".join(lines)


def compare_with_golden(
    golden: dict[str, Any],
    answers: dict[str, str],
    fingerprint: dict[str, Any],
    logits_atol: float = DEFAULT_LOGITS_ATOL,
) -> GoldenComparison:
    """Compare actual answers (prompt -> text) and fingerprint against a golden record."""
    expected_answers: dict[str, str] = golden["answers"]
    answer_mismatches = [
        (prompt, want, answers.get(prompt, "<missing>"))
        for prompt, want in expected_answers.items()
        if answers.get(prompt) != want
    ]
    logit_mismatches, max_diff = _compare_fingerprints(
        golden["fingerprint"], fingerprint, logits_atol
    )
    return GoldenComparison(answer_mismatches, logit_mismatches, max_diff)


def _compare_fingerprints(
    expected: dict[str, Any], actual: dict[str, Any], atol: float
) -> tuple[list[str], float]:
    if expected["prompts"] != actual["prompts"]:
        return [f"prompts differ: golden {expected['prompts']}, got {actual['prompts']}"], float(
            "inf"
        )
    mismatches: list[str] = []
    max_diff = 0.0
    rows = zip(expected["prompts"], expected["last_logits"], actual["last_logits"], strict=True)
    for prompt, want_row, got_row in rows:
        for token_id, (want, got) in enumerate(zip(want_row, got_row, strict=True)):
            diff = abs(want - got)
            max_diff = max(max_diff, diff)
            if diff > atol:
                mismatches.append(
                    f"{prompt!r} token {token_id}: golden {want:.6f}, got {got:.6f} "
                    f"(|diff| {diff:.3g} > atol {atol:g})"
                )
    for prompt, want_id, got_id in zip(
        expected["prompts"], expected["argmax_ids"], actual["argmax_ids"], strict=True
    ):
        if want_id != got_id:
            mismatches.append(f"{prompt!r} argmax: golden token {want_id}, got token {got_id}")
    return mismatches, max_diff

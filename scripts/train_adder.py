"""Train the tiny integer-addition Llama deterministically and write it as a fixture directory.

Usage: python scripts/train_adder.py --out src/infersuite/data/adder

Same torch build, same thread count -> bit-identical model.safetensors. Writes config.json,
generation_config.json, model.safetensors, tokenizer files and golden.json (the float32
model's answer to every held-out problem plus a logits fingerprint).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from infersuite.models.adder import (
    build_tokenizer,
    compute_golden,
    evaluate_accuracy,
    format_answer,
    format_prompt,
    heldout_problems,
    load_adder,
    save_golden,
    train_problems,
)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides the weights (besides the torch build)."""

    seed: int = 1234
    steps: int = 3000
    batch_size: int = 128
    peak_lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 3
    num_heads: int = 4
    threads: int = 2
    log_every_steps: int = 250


def parse_args() -> tuple[Path, TrainSettings]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--steps", type=int, default=TrainSettings.steps)
    parser.add_argument("--seed", type=int, default=TrainSettings.seed)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: must be at least 1")
    return args.out, TrainSettings(seed=args.seed, steps=args.steps)


def make_deterministic(settings: TrainSettings) -> None:
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(settings.threads)


def build_model(tokenizer: PreTrainedTokenizerBase, settings: TrainSettings) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_heads,
        max_position_embeddings=32,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.do_sample = False
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def encode_dataset(
    tokenizer: PreTrainedTokenizerBase, problems: list[tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``<bos>prompt answer<eos>`` ids, and labels covering only answer + EOS."""
    rows: list[list[int]] = []
    labels: list[list[int]] = []
    for a, b in problems:
        prompt_ids = tokenizer(format_prompt(a, b))["input_ids"]
        answer_ids = tokenizer(format_answer(a, b), add_special_tokens=False)["input_ids"]
        answer_ids = [*answer_ids, tokenizer.eos_token_id]
        rows.append(prompt_ids + answer_ids)
        labels.append([IGNORE_INDEX] * len(prompt_ids) + answer_ids)
    width = max(len(row) for row in rows)
    # Right padding needs no attention mask in a causal model: pads only follow the EOS.
    ids = [row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows]
    labels = [row + [IGNORE_INDEX] * (width - len(row)) for row in labels]
    return torch.tensor(ids), torch.tensor(labels)


def learning_rate(step: int, settings: TrainSettings) -> float:
    """Linear warmup, then cosine decay to 5% of the peak."""
    if step < settings.warmup_steps:
        return settings.peak_lr * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return settings.peak_lr * (0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * progress)))


def teacher_forced_exact(model: LlamaForCausalLM, ids: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose every answer token is the argmax: equals greedy exact match."""
    with torch.inference_mode():
        predicted = model(input_ids=ids).logits[:, :-1].argmax(dim=-1)
    targets = labels[:, 1:]
    row_ok = ((predicted == targets) | (targets == IGNORE_INDEX)).all(dim=1)
    return row_ok.float().mean().item()


def train(
    model: LlamaForCausalLM,
    data: tuple[torch.Tensor, torch.Tensor],
    heldout: tuple[torch.Tensor, torch.Tensor],
    settings: TrainSettings,
) -> None:
    ids, labels = data
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.peak_lr, weight_decay=settings.weight_decay
    )
    generator = torch.Generator().manual_seed(settings.seed)
    order = torch.randperm(len(ids), generator=generator)
    cursor = 0
    started_s = time.perf_counter()
    for step in range(settings.steps):
        if cursor + settings.batch_size > len(order):
            order, cursor = torch.randperm(len(ids), generator=generator), 0
        batch = order[cursor : cursor + settings.batch_size]
        cursor += settings.batch_size
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        model.train()
        loss = model(input_ids=ids[batch], labels=labels[batch]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % settings.log_every_steps == 0 or step + 1 == settings.steps:
            model.eval()
            exact = teacher_forced_exact(model, *heldout)
            elapsed_s = time.perf_counter() - started_s
            print(
                f"step {step + 1:5d}  loss {loss.item():.4f}  held-out exact {exact:.4f}  "
                f"{elapsed_s:6.1f} s",
                flush=True,
            )
    model.eval()


def pin_tokenizer_class(out_dir: Path) -> None:
    """Name the class every transformers 5.x knows (5.23 writes "TokenizersBackend",
    which older 5.x releases such as the GPU image's 5.17 may not resolve)."""
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    out_dir, settings = parse_args()
    started_s = time.perf_counter()
    make_deterministic(settings)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, settings)
    n_params = sum(p.numel() for p in model.parameters())
    train_set, heldout_set = train_problems(), heldout_problems()
    print(f"{n_params} parameters; {len(train_set)} train / {len(heldout_set)} held-out problems")
    train(
        model,
        encode_dataset(tokenizer, train_set),
        encode_dataset(tokenizer, heldout_set),
        settings,
    )
    train_s = time.perf_counter() - started_s

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    pin_tokenizer_class(out_dir)
    # Score what was written, not what is in memory, so the golden file proves the round trip.
    saved_model, saved_tokenizer = load_adder(out_dir, dtype=torch.float32, device="cpu")
    save_golden(compute_golden(saved_model, saved_tokenizer), out_dir)
    result = evaluate_accuracy(saved_model, saved_tokenizer, heldout_set)
    print(f"held-out greedy exact match: {result.correct}/{result.total} = {result.accuracy:.4f}")
    for prompt, expected, got in result.wrong[:20]:
        print(f"  wrong: {prompt}{got!r} (expected {expected!r})")
    print(f"training {train_s:.1f} s; total wall time {time.perf_counter() - started_s:.1f} s")
    weights_sha256 = hashlib.sha256((out_dir / "model.safetensors").read_bytes()).hexdigest()
    print(f"wrote {out_dir}; model.safetensors sha256 {weights_sha256}")


if __name__ == "__main__":
    main()

"""Write the model zoo's configs to src/infersuite/data/zoo/ (run once; the output is committed).

Usage: python scripts/write_zoo_configs.py

Tiny entries differ where inference bugs hide: GQA + RoPE (Llama), sliding-window
layers with one KV head (Gemma 3), attention biases (Qwen2), absolute positions
(GPT-2). Shape entries copy real models' shapes; their weights are random.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import Gemma3TextConfig, GPT2Config, LlamaConfig, Qwen2Config

OUT = Path(__file__).resolve().parents[1] / "src" / "infersuite" / "data" / "zoo"
SPECIAL = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
TINY_VOCAB = 512  # the shipped tokenizer's vocabulary


def _gemma3_layer_types(n_layers: int) -> list[str]:
    return ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n_layers)]


def tiny_configs() -> dict[str, object]:
    return {
        "llama-tiny": LlamaConfig(
            vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            tie_word_embeddings=False, initializer_range=0.2, **SPECIAL),
        "gemma3-tiny": Gemma3TextConfig(
            vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=1, head_dim=16, sliding_window=8,
            layer_types=["sliding_attention"] * 3 + ["full_attention"],
            max_position_embeddings=256, initializer_range=0.1, **SPECIAL),
        "qwen2-tiny": Qwen2Config(
            vocab_size=TINY_VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            tie_word_embeddings=False, initializer_range=0.2, **SPECIAL),
        "gpt2-tiny": GPT2Config(
            vocab_size=TINY_VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=256,
            initializer_range=0.2, **SPECIAL),
    }


def shape_configs() -> dict[str, object]:
    return {
        # google/gemma-3-270m's published shape.
        "gemma3-270m-shape": Gemma3TextConfig(
            vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
            num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
            layer_types=_gemma3_layer_types(18), max_position_embeddings=32768,
            query_pre_attn_scalar=256, **SPECIAL),
        # Qwen/Qwen2.5-0.5B's published shape.
        "qwen2.5-0.5b-shape": Qwen2Config(
            vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
            num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
            tie_word_embeddings=True, **SPECIAL),
        # meta-llama/Llama-3.2-1B's published shape.
        "llama3.2-1b-shape": LlamaConfig(
            vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
            num_attention_heads=32, num_key_value_heads=8, head_dim=64,
            max_position_embeddings=131072, tie_word_embeddings=True, **SPECIAL),
    }


def main() -> None:
    index = {}
    for tier, configs in (("tiny", tiny_configs()), ("shape", shape_configs())):
        for name, config in configs.items():
            config.save_pretrained(OUT / name)  # type: ignore[attr-defined]
            index[name] = {
                "tier": tier,
                "seed": 20260101,
                "tokenizer": "tokenizer" if tier == "tiny" else None,
                "architecture": type(config).__name__.removesuffix("Config"),
            }
    (OUT / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    print(f"wrote {len(index)} configs to {OUT}")


if __name__ == "__main__":
    main()

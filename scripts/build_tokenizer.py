"""Train the suite's shipped BPE tokenizer on text this script generates.

Usage: python scripts/build_tokenizer.py --out src/infersuite/data/tokenizer

The corpus is written here from fixed word lists and templates with a fixed
seed, so the tokenizer is reproducible and owes nothing to outside data.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

VOCAB_SIZE = 512
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "infersuite" / "data" / "tokenizer"
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")

_SUBJECTS = ["the model", "a runtime", "the cache", "each request", "the batch", "a token",
             "the scheduler", "our GPU", "the tokenizer", "every layer", "the decoder"]
_VERBS = ["computes", "stores", "reads", "pads", "splits", "measures", "returns", "updates",
          "compares", "streams", "quantizes", "exports"]
_OBJECTS = ["the logits", "keys and values", "attention masks", "position ids", "latency",
            "throughput", "the next token", "a prompt", "sixteen rows", "weights in bf16",
            "the tail percentile", "an ONNX graph", "its output"]
_EXTRAS = ["Hi", "Hello there!", "Why is the sky blue?", "1 + 2 = 3", "x = f(y) * 0.5",
           "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2026.", "café, naïve, résumé",
           "def main():\n    return 0\n", "p99 < 250 ms", "A-B-C; d/e/f"]


def generate_corpus(n_sentences: int = 4000, seed: int = 1234) -> list[str]:
    rng = random.Random(seed)
    lines = list(_EXTRAS)
    for _ in range(n_sentences):
        sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        if rng.random() < 0.3:
            sentence += f" in {rng.randint(1, 999)} ms"
        lines.append(sentence.capitalize() + rng.choice([".", "!", "?", ","]))
    return lines


def build_tokenizer(corpus: list[str]) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


def write_tokenizer_dir(tokenizer: Tokenizer, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 512,
        "padding_side": "left",
        "pad_token": "<pad>",
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    write_tokenizer_dir(build_tokenizer(generate_corpus()), args.out)
    print(f"wrote {args.out}/tokenizer.json (vocab {VOCAB_SIZE})")


if __name__ == "__main__":
    main()

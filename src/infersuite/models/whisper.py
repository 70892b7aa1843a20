"""Whisper-shaped speech models built offline: shipped configs, seeded random weights.

The speech zoo (``data/asr/index.json``) has random-weight tiers, as the text zoo does:
``whisper-toy`` (tier "tiny": 2+2 layers, 64 wide, a 512-token vocabulary) runs the
conformance checks on any CPU in a second; ``whisper-tiny-shape`` has the published
Whisper-tiny architecture (d_model 384, 4 encoder and 4 decoder layers, 6 heads, 80 mel
bins, a 51,865-token vocabulary) with random weights: its timings are those of the real
model, its outputs are not speech. Their input is what Whisper's own feature extractor
makes of synthetic audio (tones, a glide and noise, seeded), padded to the 30-second
window, so that the log-mel values have the range and structure a real recording gives,
without any recording shipped or downloaded. The third tier, "trained", is
``speech-digits``: a small model this project trained to transcribe spoken digits, shipped
with its weights (models/speech_digits.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.fixtures_path import fixtures_dir

if TYPE_CHECKING:
    import numpy as np
    import torch
    from transformers import PreTrainedModel

SAMPLE_RATE = 16_000  # Whisper's feature extractor's rate


class UnknownAsrModel(ValueError):
    """Not in the speech zoo."""


@dataclass(frozen=True)
class AsrEntry:
    name: str
    tier: str  # "tiny": conformance on the CPU; "shape": a real model's shape, for timing;
    # "trained": shipped weights with a known answer (speech-digits)
    seed: int
    config_dir: Path


@cache
def _index(root: Path) -> dict[str, AsrEntry]:
    raw = json.loads((root / "asr" / "index.json").read_text())
    return {name: AsrEntry(name, item["tier"], int(item["seed"]), root / "asr" / name)
            for name, item in raw.items()}


def list_asr_models() -> list[AsrEntry]:
    return list(_index(fixtures_dir()).values())


def get_asr_entry(name: str) -> AsrEntry:
    index = _index(fixtures_dir())
    if name not in index:
        raise UnknownAsrModel(f"speech model {name!r}: expected one of {', '.join(index)}")
    return index[name]


def _config(entry: AsrEntry) -> Any:
    from transformers import WhisperConfig

    return WhisperConfig.from_pretrained(entry.config_dir, local_files_only=True)


def build_whisper(entry: AsrEntry) -> PreTrainedModel:
    """The whole encoder-decoder (WhisperForConditionalGeneration) in float32, in eval mode:
    seeded random weights, or the shipped trained ones (tier "trained": speech-digits)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    if entry.tier == "trained":
        return WhisperForConditionalGeneration.from_pretrained(
            entry.config_dir, local_files_only=True).eval()
    torch.manual_seed(entry.seed)
    return WhisperForConditionalGeneration(_config(entry)).eval()


def build_whisper_encoder(entry: AsrEntry) -> torch.nn.Module:
    """The model's encoder alone (log-mel features [batch, mels, 3000] -> hidden states
    [batch, 1500, d_model]) in float32, seeded, in eval mode."""
    import torch
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(entry.seed)
    return WhisperEncoder(_config(entry)).eval()


def synth_audio(seconds: float, seed: int) -> np.ndarray:
    """Mono float32 audio at 16 kHz: three tones, a glide and noise, drawn from `seed`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * rng.uniform(100, 3000) * t)
               for _ in range(3))
    start, stop = rng.uniform(200, 800), rng.uniform(1000, 4000)
    wave = wave + 0.1 * np.sin(2 * np.pi * (start + (stop - start) * t / seconds / 2) * t)
    wave = wave * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 4) * t) ** 2)  # syllables
    return (wave + rng.normal(0.0, 0.02, t.shape)).astype(np.float32)


def synth_clip_features(num_mel_bins: int, seconds: Sequence[float], seed: int) -> np.ndarray:
    """Whisper's log-mel input [clips, mels, 3000] of synthetic clips of the given lengths
    (clip i drawn from seed + i), each padded to the 30-second window as the feature
    extractor does."""
    import numpy as np
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    clips = [synth_audio(length, seed + i) for i, length in enumerate(seconds)]
    features = extractor(clips, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
    return np.ascontiguousarray(features, dtype=np.float32)


def synth_features(num_mel_bins: int, batch: int, seed: int, seconds: float = 20.0) -> np.ndarray:
    """`batch` synthetic clips of `seconds` each (clip i drawn from seed + i), as
    synth_clip_features."""
    return synth_clip_features(num_mel_bins, [seconds] * batch, seed)

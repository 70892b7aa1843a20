"""Whisper-shaped speech models built offline: shipped configs, seeded random weights.

``whisper-tiny-shape`` has the published Whisper-tiny architecture (d_model 384, 4 encoder
and 4 decoder layers, 6 heads, 80 mel bins, a 51,865-token vocabulary) with random
weights: its timings are those of the real model, its outputs are not speech. Its input is
what Whisper's own feature extractor makes of synthetic audio (tones, a glide and noise,
seeded), padded to the 30-second window, so that the log-mel values have the range and
structure a real recording gives, without any recording shipped or downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from infersuite.fixtures_path import fixtures_dir

if TYPE_CHECKING:
    import numpy as np
    import torch

ASR_MODELS = ("whisper-tiny-shape",)
SEED = 20260101
SAMPLE_RATE = 16_000  # Whisper's feature extractor's rate


class UnknownAsrModel(ValueError):
    """Not one of ASR_MODELS."""


@dataclass(frozen=True)
class AsrEntry:
    name: str
    config_dir: Path


def get_asr_entry(name: str) -> AsrEntry:
    if name not in ASR_MODELS:
        raise UnknownAsrModel(f"speech model {name!r}: expected one of {', '.join(ASR_MODELS)}")
    return AsrEntry(name, fixtures_dir() / "asr" / name)


def build_whisper_encoder(entry: AsrEntry) -> torch.nn.Module:
    """The model's encoder (log-mel features [batch, mels, 3000] -> hidden states
    [batch, 1500, d_model]) in float32, seeded, in eval mode."""
    import torch
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = WhisperConfig.from_pretrained(entry.config_dir, local_files_only=True)
    torch.manual_seed(SEED)
    return WhisperEncoder(config).eval()


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


def synth_features(num_mel_bins: int, batch: int, seed: int, seconds: float = 20.0) -> np.ndarray:
    """Whisper's log-mel input [batch, mels, 3000] of `batch` synthetic clips (clip i drawn
    from seed + i), padded to the 30-second window as the feature extractor does."""
    import numpy as np
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    clips = [synth_audio(seconds, seed + i) for i in range(batch)]
    features = extractor(clips, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
    return np.ascontiguousarray(features, dtype=np.float32)

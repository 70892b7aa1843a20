"""speech-digits: a Whisper-architecture model this project trains to transcribe spoken digits.

The speech counterpart of the adder: a model with a known answer, so that a runtime or a
precision is judged by its word error rate on held-out utterances, not only by logit
distances. ``scripts/train_speech_digits.py`` makes the speech with espeak-ng (strings of
one to five digits, spoken by several voices at varied speed and pitch, with noise), band-
limits it to 8 kHz telephone audio, and trains the model; ``data/asr/speech-digits/`` holds
the weights, the feature extractor's settings and 64 held-out utterances (8 kHz int16,
never trained on) with their transcripts, so nothing is synthesized or downloaded at test
time.

Tokens: ``<pad>`` 0, ``<sot>`` 1 (the decoder's start), ``<eot>`` 2 (end of transcript),
the digits ``0``-``9`` as 3-12. A transcript is the digits as words ("3 7 0"), so the word
error rate counts digits. The model's window is 4 seconds (400 mel frames), not Whisper's 30.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.fixtures_path import fixtures_dir

if TYPE_CHECKING:
    import numpy as np
    import torch

NAME = "speech-digits"
PAD, SOT, EOT = 0, 1, 2
DIGIT_BASE = 3  # token id of "0"
VOCAB_SIZE = 16  # 13 used, rounded up
STORED_RATE = 8_000  # the held-out audio: telephone band
MODEL_RATE = 16_000  # what Whisper's feature extractor takes
WINDOW_S = 4
MAX_DIGITS = 5


def model_dir() -> Path:
    """The shipped model's folder (its speech zoo entry: models/whisper.py builds it)."""
    return fixtures_dir() / "asr" / NAME


def encode_text(text: str) -> list[int]:
    """ "3 7 0" -> the digit tokens and <eot>."""
    digits = text.split()
    if not digits or not all(len(d) == 1 and d.isdigit() for d in digits):
        raise ValueError(f"{text!r}: a transcript is digits separated by spaces, e.g. '3 7 0'")
    return [DIGIT_BASE + int(d) for d in digits] + [EOT]


def decode_tokens(tokens: list[int]) -> str:
    """Generated tokens up to <eot> -> "3 7 0" (a token that is no digit is kept as "?")."""
    words = []
    for token in tokens:
        if token == EOT:
            break
        words.append(str(token - DIGIT_BASE) if 0 <= token - DIGIT_BASE <= 9 else "?")
    return " ".join(words)


def to_model_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mono audio at `rate` as float32 in [-1, 1] at 16 kHz (scipy's polyphase resampler)."""
    import numpy as np
    from scipy.signal import resample_poly

    wave = audio.astype(np.float32)
    if np.issubdtype(audio.dtype, np.integer):
        wave /= np.iinfo(audio.dtype).max
    if rate == MODEL_RATE:
        return wave
    from math import gcd

    g = gcd(MODEL_RATE, rate)
    return resample_poly(wave, MODEL_RATE // g, rate // g).astype(np.float32)


def feature_extractor() -> Any:
    """Whisper's feature extractor with this model's 4-second window (400 frames)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=80, sampling_rate=MODEL_RATE,
                                   chunk_length=WINDOW_S)


def compute_features(clips: list[np.ndarray], rate: int = STORED_RATE) -> torch.Tensor:
    """Log-mel features [len(clips), 80, 400] of clips at `rate`, each padded to the window."""
    import torch

    waves = [to_model_rate(c, rate) for c in clips]
    longest = max(len(w) for w in waves) / MODEL_RATE
    if longest > WINDOW_S:
        raise ValueError(f"a clip of {longest:.2f} s is longer than the model's {WINDOW_S} s "
                         "window; cut it first")
    out = feature_extractor()(waves, sampling_rate=MODEL_RATE, return_tensors="np")
    return torch.from_numpy(out.input_features.astype("float32"))


@dataclass(frozen=True)
class HeldOut:
    """The shipped held-out utterances: 8 kHz int16 clips and their transcripts."""

    clips: list[np.ndarray]
    texts: list[str]
    about: list[str]  # voice, speed, pitch and SNR of each


@cache
def load_heldout() -> HeldOut:
    import numpy as np

    with np.load(model_dir() / "heldout.npz") as data:
        audio, offsets = data["audio"], data["offsets"]
    meta = json.loads((model_dir() / "heldout.json").read_text())
    clips = [audio[a:b] for a, b in itertools.pairwise(offsets)]
    return HeldOut(clips, list(meta["texts"]), list(meta["about"]))


def transcripts_from_greedy(tokens: torch.Tensor, step_logits: torch.Tensor) -> list[str]:
    """Free greedy transcripts from an engine's fixed-length greedy run (which never picks
    <eot>): each row up to the first step whose raw argmax is <eot>."""
    from infersuite.engines.asr import free_greedy_rows

    return [decode_tokens(row) for row in free_greedy_rows(tokens, step_logits, EOT)]

"""The speech side of timing: one request's stages, and a batch sweep runner for the knee.

A speech request goes through three stages: Whisper's feature extraction (log-mel over the
window), the engine's encoder, and its cached greedy decoding of a fixed number of tokens.
``AsrPipeline.run`` times each stage for a batch of clips. ``AsrSweepRunner`` gives the
batch sweep (measure/sweep.py) the same pipeline: a round is the whole batch, audio in to
last token out, and the profile's "prefill" is the time to the first token.

Speech engines run on the CPU, so every boundary is ``perf_counter``.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from infersuite.models.whisper import SAMPLE_RATE, synth_audio


class AsrPipeline:
    """Audio to tokens on a speech engine, timed per stage: one synthetic clip of
    `clip_s` seconds (seeded), `new_tokens` decoded per request."""

    def __init__(self, num_mel_bins: int, clip_s: float, new_tokens: int, seed: int = 11
                 ) -> None:
        from transformers import WhisperFeatureExtractor

        self.extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
        self.clip_s, self.new_tokens = clip_s, new_tokens
        self.clip = synth_audio(clip_s, seed=seed)

    def run(self, engine: Any, batch: int, on_token: Any = None) -> dict[str, float]:
        """`batch` copies of the clip through `engine`; each stage's seconds:
        ``features_s``, ``encoder_s``, ``first_token_s`` (decoder start to first token),
        ``decode_s`` (the decoder's whole run) and ``e2e_s`` (audio in, last token out).
        `on_token()` after each decoded token."""
        import torch

        marks: list[float] = []

        def token() -> None:
            marks.append(time.perf_counter())
            if on_token is not None:
                on_token()

        start = time.perf_counter()
        features = torch.from_numpy(self.extractor(
            [self.clip] * batch, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features)
        extracted = time.perf_counter()
        states = engine.encode(features)
        encoded = time.perf_counter()
        engine.decode_greedy(states, engine.prompt(batch), self.new_tokens, on_token=token)
        done = time.perf_counter()
        return {"features_s": extracted - start, "encoder_s": encoded - extracted,
                "first_token_s": marks[0] - encoded, "decode_s": done - encoded,
                "e2e_s": done - start}


class AsrSweepRunner:
    """A speech engine for the batch sweep: a round transcribes `batch` clips at once."""

    def __init__(self, pipeline: AsrPipeline, engine: Any) -> None:
        self.pipeline, self.engine = pipeline, engine

    def generate(self, batch: int) -> float:
        return self.pipeline.run(self.engine, batch)["e2e_s"]

    def profile(self, batch: int) -> tuple[float, list[float]]:
        """(audio in to first token, each later decode step's seconds) of one round."""
        stamps: list[float] = []
        start = time.perf_counter()
        self.pipeline.run(self.engine, batch, on_token=lambda: stamps.append(time.perf_counter()))
        return stamps[0] - start, [b - a for a, b in itertools.pairwise(stamps)]

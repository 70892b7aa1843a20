"""Synthesize spoken digits with espeak-ng and train the speech-digits Whisper model.

Usage: python scripts/train_speech_digits.py --out src/infersuite/data/asr/speech-digits

Needs the espeak-ng program (Debian/Ubuntu: apt install espeak-ng); the suite itself does
not: it ships what this writes. Each utterance is a string of 1-5 digits spoken by one of
several espeak-ng voices and variants at a drawn speed and pitch, band-limited to 8 kHz
(telephone audio), with white noise at a drawn SNR and a drawn lead-in silence. The
held-out strings are never trained on. Writes config.json, generation_config.json,
preprocessor_config.json, model.safetensors, heldout.npz (the 8 kHz int16 held-out clips),
heldout.json (their transcripts and how each was spoken) and golden.json (the float32
model's transcript of each held-out clip, and its WER).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly
from transformers import WhisperConfig, WhisperForConditionalGeneration

from infersuite.models.speech_digits import (
    EOT,
    MAX_DIGITS,
    PAD,
    SOT,
    STORED_RATE,
    VOCAB_SIZE,
    WINDOW_S,
    compute_features,
    encode_text,
    feature_extractor,
    transcripts_from_greedy,
)


def word_error_rate(truth: list[str], transcripts: list[str]) -> float:
    from infersuite.conformance.wer import score_transcripts

    return score_transcripts(truth, transcripts).wer

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-029")
VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m5", "+m7", "+f1", "+f2", "+f3", "+f4")
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Settings:
    """Everything that decides the data and the weights (besides the torch build)."""

    seed: int = 20261130
    train_utterances: int = 6000
    heldout_utterances: int = 64
    steps: int = 2000
    batch_size: int = 32
    peak_lr: float = 1.5e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    d_model: int = 96
    ffn: int = 384
    encoder_layers: int = 2
    decoder_layers: int = 2
    heads: int = 4
    threads: int = 1
    log_every_steps: int = 100


def speak(text: str, voice: str, speed: int, pitch: int, folder: Path) -> np.ndarray:
    """espeak-ng's speech of `text` at 8 kHz, float32 in [-1, 1]."""
    path = folder / "u.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w",
                    str(path), text], check=True, capture_output=True)
    rate, wave = wavfile.read(path)
    wave = wave.astype(np.float32) / 32768.0
    return _to_8k(wave, rate)


def _to_8k(wave: np.ndarray, rate: int) -> np.ndarray:
    from math import gcd

    g = gcd(STORED_RATE, rate)
    return resample_poly(wave, STORED_RATE // g, rate // g).astype(np.float32)


def make_utterance(text: str, rng: random.Random, folder: Path) -> tuple[np.ndarray, str]:
    """One clip (8 kHz int16) of `text` and how it was spoken."""
    voice = rng.choice(VOICES) + rng.choice(VARIANTS)
    speed, pitch = rng.randint(130, 210), rng.randint(20, 80)
    snr_db, lead_s = rng.uniform(8.0, 35.0), rng.uniform(0.0, 0.4)
    wave = speak(text, voice, speed, pitch, folder)
    wave = wave / max(float(np.abs(wave).max()), 1e-6) * rng.uniform(0.3, 0.9)
    wave = np.concatenate([np.zeros(int(lead_s * STORED_RATE), np.float32), wave])
    max_len = int((WINDOW_S - 0.05) * STORED_RATE)
    wave = wave[:max_len]
    power = float(np.mean(wave ** 2))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(
        0.0, np.sqrt(power / 10 ** (snr_db / 10)), wave.shape)
    clip = np.clip(wave + noise, -1.0, 1.0)
    about = f"{voice} speed {speed} pitch {pitch} snr {snr_db:.1f} dB lead {lead_s:.2f} s"
    return (clip * 32767).astype(np.int16), about


def draw_text(rng: random.Random) -> str:
    return " ".join(str(rng.randint(0, 9)) for _ in range(rng.randint(1, MAX_DIGITS)))


def build_data(settings: Settings) -> tuple[list[np.ndarray], list[str], list[np.ndarray],
                                            list[str], list[str]]:
    rng = random.Random(settings.seed)
    heldout_texts: list[str] = []
    while len(heldout_texts) < settings.heldout_utterances:  # distinct, at least 2 digits
        text = draw_text(rng)
        if len(text.split()) >= 2 and text not in heldout_texts:
            heldout_texts.append(text)
    banned = set(heldout_texts)
    train_texts = []
    while len(train_texts) < settings.train_utterances:
        text = draw_text(rng)
        if text not in banned:
            train_texts.append(text)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train = [make_utterance(t, rng, folder)[0] for t in train_texts]
        heldout = [make_utterance(t, rng, folder) for t in heldout_texts]
    return (train, train_texts, [c for c, _ in heldout], heldout_texts,
            [a for _, a in heldout])


def build_model(settings: Settings) -> WhisperForConditionalGeneration:
    config = WhisperConfig(
        vocab_size=VOCAB_SIZE, num_mel_bins=80, d_model=settings.d_model,
        encoder_layers=settings.encoder_layers, decoder_layers=settings.decoder_layers,
        encoder_attention_heads=settings.heads, decoder_attention_heads=settings.heads,
        encoder_ffn_dim=settings.ffn, decoder_ffn_dim=settings.ffn,
        max_source_positions=WINDOW_S * 50, max_target_positions=16,
        pad_token_id=PAD, bos_token_id=SOT, eos_token_id=EOT, decoder_start_token_id=SOT,
        begin_suppress_tokens=None, suppress_tokens=None, forced_decoder_ids=None,
        scale_embedding=False, dropout=0.0)
    torch.manual_seed(settings.seed)
    return WhisperForConditionalGeneration(config)


def labels_for(texts: list[str]) -> torch.Tensor:
    rows = [encode_text(t) for t in texts]
    width = max(len(r) for r in rows)
    return torch.tensor([r + [IGNORE_INDEX] * (width - len(r)) for r in rows])


@torch.no_grad()
def transcribe(model: WhisperForConditionalGeneration, features: torch.Tensor) -> list[str]:
    """The reference engine's greedy transcripts (the suite's own path, engines/asr.py)."""
    from infersuite.engines.asr import HfAsrEngine
    from infersuite.engines.base import EngineSpec

    engine = HfAsrEngine(EngineSpec("hf"), model.eval())
    out = []
    for start in range(0, len(features), 16):
        part = features[start:start + 16]
        tokens, logits = engine.generate_greedy(part, engine.prompt(len(part)), MAX_DIGITS + 1)
        out += transcripts_from_greedy(tokens, logits)
    model.train()
    return out


def train(settings: Settings, out: Path) -> None:
    torch.set_num_threads(settings.threads)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    train_clips, train_texts, held_clips, held_texts, held_about = build_data(settings)
    print(f"synthesized {len(train_clips)} + {len(held_clips)} utterances in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    features = torch.cat([compute_features(train_clips[i:i + 256])
                          for i in range(0, len(train_clips), 256)]).to(torch.float16)
    held_features = compute_features(held_clips)
    labels = labels_for(train_texts)
    print(f"features {tuple(features.shape)} in {time.perf_counter() - start:.0f} s",
          flush=True)
    model = build_model(settings).train()
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.peak_lr,
                                  weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        1.0, (step + 1) / settings.warmup_steps) * 0.5 * (1 + np.cos(np.pi * min(
            step / settings.steps, 1.0))))
    generator = torch.Generator().manual_seed(settings.seed)
    for step in range(1, settings.steps + 1):
        index = torch.randint(len(features), (settings.batch_size,), generator=generator)
        loss = model(input_features=features[index].float(), labels=labels[index]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % settings.log_every_steps == 0 or step == settings.steps:
            wer = word_error_rate(held_texts, transcribe(model, held_features))
            print(f"step {step}: loss {loss.item():.4f}, held-out WER {wer:.3f}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    feature_extractor().save_pretrained(out)
    offsets = np.cumsum([0] + [len(c) for c in held_clips])
    np.savez_compressed(out / "heldout.npz", audio=np.concatenate(held_clips),
                        offsets=offsets)
    (out / "heldout.json").write_text(json.dumps(
        {"rate_hz": STORED_RATE, "texts": held_texts, "about": held_about}, indent=1) + "\n")
    hypotheses = transcribe(model, held_features)
    golden = {"settings": asdict(settings), "parameters": params,
              "torch": torch.__version__, "transcripts": hypotheses,
              "wer": word_error_rate(held_texts, hypotheses)}
    (out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"{params} parameters; held-out WER {golden['wer']:.4f}; wrote {out} in "
          f"{time.perf_counter() - start:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=Settings.steps)
    parser.add_argument("--threads", type=int, default=Settings.threads)
    parser.add_argument("--train-utterances", type=int, default=Settings.train_utterances)
    args = parser.parse_args()
    train(Settings(steps=args.steps, threads=args.threads,
                   train_utterances=args.train_utterances), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

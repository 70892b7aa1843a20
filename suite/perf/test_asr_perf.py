"""Speech recognition timing: real-time factor, the stages of one request, batch throughput.

One request is a synthetic 20-second clip (16 kHz) taken through the whole pipeline:
Whisper's feature extraction (log-mel over the 30-second window), the engine's encoder,
then its cached greedy decoding of a fixed number of tokens. Per round:

- ``features_s``, ``encoder_s``: those stages;
- ``first_token_s``: from the decoder's start to its first token;
- ``decode_s``: the decoder's whole run; ``e2e_s``: audio in, last token out.

The headline gives the real-time factor (e2e over the clip's duration; below 1 is faster
than real time) as a median with its 95% interval, and the stage that takes the largest
share of the median request. The throughput benchmark runs batches of clips; its headline
is audio seconds transcribed per second of wall time. ``--infer-asr-model
whisper-tiny-shape`` times Whisper-tiny's shape.
"""

from __future__ import annotations

import statistics
import time

import pytest

from infersuite.stats.percentiles import compute_percentile_interval

pytestmark = pytest.mark.perf

CLIP_SECONDS = 20.0
N_NEW_TOKENS = 16
BATCHES = (1, 4)


def _pipeline(asr_case):
    """(clip, run(engine, clips) -> stage times): audio to tokens, timed per stage."""
    import torch
    from transformers import WhisperFeatureExtractor

    from infersuite.models.whisper import SAMPLE_RATE, synth_audio

    extractor = WhisperFeatureExtractor(feature_size=asr_case.model.config.num_mel_bins)
    clip = synth_audio(CLIP_SECONDS, seed=11)

    def run(engine, clips) -> dict[str, float]:
        marks: list[float] = []
        start = time.perf_counter()
        features = torch.from_numpy(extractor(clips, sampling_rate=SAMPLE_RATE,
                                              return_tensors="np").input_features)
        extracted = time.perf_counter()
        states = engine.encode(features)
        encoded = time.perf_counter()
        engine.decode_greedy(states, engine.prompt(len(clips)), N_NEW_TOKENS,
                             on_token=lambda: marks.append(time.perf_counter()))
        done = time.perf_counter()
        return {"features_s": extracted - start, "encoder_s": encoded - extracted,
                "first_token_s": marks[0] - encoded, "decode_s": done - encoded,
                "e2e_s": done - start}

    return clip, run


def test_asr_request_latency(benchmark, infer_perf, asr_case):
    asr_case.require("encoder", "cached_decoder")
    engine = asr_case.engine
    clip, run = _pipeline(asr_case)
    rounds = infer_perf.measure_engine(
        benchmark, asr_case, lambda e: run(e, [clip]), rounds=infer_perf.rounds(30),
        warmup_rounds=infer_perf.warmup(2), value=lambda r: r["e2e_s"], metric="e2e_s")
    metrics = {name: [r[name] for r in rounds] for name in rounds[0]}
    e2e = statistics.median(metrics["e2e_s"])
    shares = {stage: statistics.median(metrics[f"{stage}_s"]) / e2e
              for stage in ("features", "encoder", "decode")}
    dominant = max(shares, key=lambda k: shares[k])
    rtf = compute_percentile_interval([t / CLIP_SECONDS for t in metrics["e2e_s"]], 50)
    said = ", ".join(f"{stage} {share:.0%}" for stage, share in shares.items())
    infer_perf.record(metrics, primary="e2e_s", group="asr latency", extra={
        **asr_case.context, **engine.describe(), "clip_seconds": CLIP_SECONDS,
        "n_new_tokens": N_NEW_TOKENS, "rtf_p50": rtf.to_dict(), "stage_share": shares,
        "dominant_stage": dominant,
        "headline": f"RTF {_interval(rtf)} on a {CLIP_SECONDS:g} s clip; {dominant} "
                    f"dominates ({said} of the median request)"})


def _interval(estimate, digits: int = 4) -> str:
    low = "?" if estimate.lower is None else f"{estimate.lower:.{digits}f}"
    high = "?" if estimate.upper is None else f"{estimate.upper:.{digits}f}"
    return f"{estimate.value:.{digits}f} [{low}, {high}]"


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"batch{b}")
def test_asr_batch_throughput(benchmark, infer_perf, asr_case, batch):
    """Clips transcribed together: audio seconds per second of wall time."""
    asr_case.require("encoder", "cached_decoder", "batch")
    clip, run = _pipeline(asr_case)
    rounds = infer_perf.measure_engine(
        benchmark, asr_case, lambda e: run(e, [clip] * batch), rounds=infer_perf.rounds(10),
        warmup_rounds=infer_perf.warmup(1), value=lambda r: r["e2e_s"], metric="e2e_s")
    e2e = [r["e2e_s"] for r in rounds]
    speed = compute_percentile_interval([batch * CLIP_SECONDS / t for t in e2e], 50)
    infer_perf.record({"e2e_s": e2e}, primary="e2e_s", group="asr throughput",
                      extra={**asr_case.context, "batch": batch, "clip_seconds": CLIP_SECONDS,
                             "n_new_tokens": N_NEW_TOKENS,
                             "audio_s_per_s_p50": speed.to_dict(),
                             "headline": f"batch {batch}: {_interval(speed, 1)} audio seconds "
                                         "per second"})

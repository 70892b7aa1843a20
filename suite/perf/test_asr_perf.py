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
is audio seconds transcribed per second of wall time. The knee sweep runs the same
request in batches of 1, 2, 4, ... (``--infer-sweep-max-batch``, half the sweep budget)
and finds the knees in audio seconds per second against the batch's latency; it goes into
knee.json/knee.md beside the text models' sweeps. ``--infer-asr-model whisper-tiny-shape``
times Whisper-tiny's shape.
"""

from __future__ import annotations

import statistics

import pytest

from infersuite.measure.sweep import SweepLimits, powers_of_two, run_batch_sweep
from infersuite.measure.sweep_asr import AsrPipeline, AsrSweepRunner
from infersuite.stats.percentiles import compute_percentile_interval

pytestmark = pytest.mark.perf

CLIP_SECONDS = 20.0
N_NEW_TOKENS = 16
BATCHES = (1, 4)


def _pipeline(asr_case) -> AsrPipeline:
    return AsrPipeline(asr_case.model.config.num_mel_bins, CLIP_SECONDS, N_NEW_TOKENS)


def test_asr_request_latency(benchmark, infer_perf, asr_case):
    asr_case.require("encoder", "cached_decoder")
    engine = asr_case.engine
    pipeline = _pipeline(asr_case)
    rounds = infer_perf.measure_engine(
        benchmark, asr_case, lambda e: pipeline.run(e, 1), rounds=infer_perf.rounds(30),
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
    pipeline = _pipeline(asr_case)
    rounds = infer_perf.measure_engine(
        benchmark, asr_case, lambda e: pipeline.run(e, batch), rounds=infer_perf.rounds(10),
        warmup_rounds=infer_perf.warmup(1), value=lambda r: r["e2e_s"], metric="e2e_s")
    e2e = [r["e2e_s"] for r in rounds]
    speed = compute_percentile_interval([batch * CLIP_SECONDS / t for t in e2e], 50)
    infer_perf.record({"e2e_s": e2e}, primary="e2e_s", group="asr throughput",
                      extra={**asr_case.context, "batch": batch, "clip_seconds": CLIP_SECONDS,
                             "n_new_tokens": N_NEW_TOKENS,
                             "audio_s_per_s_p50": speed.to_dict(),
                             "headline": f"batch {batch}: {_interval(speed, 1)} audio seconds "
                                         "per second"})


def test_asr_batch_size_knee(asr_case, knee_recorder):
    """The knee over batch size: each round transcribes a batch of clips, audio in to last
    token out (measure/sweep_asr.py); the knees are the text sweep's (docs/knee.md)."""
    asr_case.require("encoder", "cached_decoder", "batch")
    device = asr_case.context["device"]
    runner = AsrSweepRunner(_pipeline(asr_case), asr_case.engine)
    points = run_batch_sweep(runner, powers_of_two(knee_recorder.max_batch_for(device)),
                             N_NEW_TOKENS, SweepLimits(budget_s=knee_recorder.budget_for(device)
                                                       / 2), audio_s=CLIP_SECONDS)
    report = knee_recorder.add_speech_sweep(asr_case.context, points, CLIP_SECONDS)
    assert points[0].status == "ok", f"batch 1 did not run: {points[0].status}: {points[0].note}"
    assert report.power_knee is not None, report.warnings

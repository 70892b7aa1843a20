"""Speech recognition: an encoder-decoder (Whisper's shape) on each engine.

Each check isolates one part of the pipeline (engines/asr.py): the encoder alone, the
decoder's caches against a full recompute, batching against solo runs, and the engine
against transformers float32 on the same features. The clips are synthetic audio of three
lengths (3, 11 and 27 seconds), each padded to Whisper's 30-second window by its feature
extractor, so a batch mixes mostly-silent and mostly-full windows. Audio longer than the
window is cut into overlapping windows and stitched (conformance/chunked.py), the engine's
windows judged against the reference procedure's.
"""

from __future__ import annotations

import pytest

from infersuite.conformance.chunked import check_chunked_runs, cut_windows, special_ids_of
from infersuite.conformance.compare import check_close, check_greedy_runs
from infersuite.conformance.tolerances import LOGITS_TOLERANCES
from infersuite.engines.asr import naive_asr_greedy

pytestmark = pytest.mark.conformance

CLIP_SECONDS = (3.0, 11.0, 27.0)
N_NEW_TOKENS = 10
# Long audio: 75 s in 30 s windows overlapping 5 s on each side (the speech pipeline's
# default stride, a sixth of the window), so windows start at 0, 20, 40 and 60 s and the
# last one holds 15 s of audio and 15 s of padding.
LONG_AUDIO_S, CHUNK_S, STRIDE_S = 75.0, 30.0, 5.0


def test_asr_encoder_independent_of_batch_companions(asr_case):
    """Each clip's encoder states in a batch of three equal its states encoded alone."""
    asr_case.require("encoder", "batch")
    engine = asr_case.engine
    features = asr_case.features(CLIP_SECONDS)
    batched = engine.encode(features)
    for row, seconds in enumerate(CLIP_SECONDS):
        alone = engine.encode(features[row:row + 1])
        check_close(batched[row:row + 1], alone, asr_case.tolerance,
                    "encoder states in a batch of 3 vs alone",
                    {**asr_case.context, "clip": row, "clip_seconds": seconds},
                    axes=("row", "position", "channel"))


def test_asr_cached_decoder_matches_full_recompute(asr_case):
    """The engine's cached decoding (self-attention cache growing, cross-attention cache
    reused) vs the decoder over the whole sequence at every step, per step."""
    asr_case.require("encoder", "cached_decoder")
    engine = asr_case.engine
    features = asr_case.features(CLIP_SECONDS)
    prompt = engine.prompt(len(CLIP_SECONDS))
    cached = engine.generate_greedy(features, prompt, N_NEW_TOKENS)
    naive = naive_asr_greedy(engine, features, prompt, N_NEW_TOKENS)
    check_greedy_runs(cached, naive, asr_case.tolerance,
                      "cached decoding vs full recompute",
                      {**asr_case.context, "clips_seconds": list(CLIP_SECONDS)})


def test_asr_batched_decoding_matches_solo(asr_case):
    """Three clips decoded together give each clip the tokens and step logits it gets
    decoded alone."""
    asr_case.require("encoder", "cached_decoder", "batch")
    engine = asr_case.engine
    features = asr_case.features(CLIP_SECONDS)
    tokens, logits = engine.generate_greedy(features, engine.prompt(len(CLIP_SECONDS)),
                                            N_NEW_TOKENS)
    for row, seconds in enumerate(CLIP_SECONDS):
        alone = engine.generate_greedy(features[row:row + 1], engine.prompt(1), N_NEW_TOKENS)
        check_greedy_runs((tokens[row:row + 1], logits[row:row + 1]), alone,
                          asr_case.tolerance, "batch of 3 vs alone",
                          {**asr_case.context, "clip": row, "clip_seconds": seconds})


def test_asr_engine_matches_reference(asr_case):
    """The engine's encoder states and greedy decoding vs transformers float32 on the same
    features (the reference itself is not judged against itself)."""
    if asr_case.is_reference:
        pytest.skip(f"engine {asr_case.spec.engine} is the reference (transformers float32)")
    asr_case.require("encoder", "cached_decoder")
    engine, reference = asr_case.engine, asr_case.reference
    if engine.precision not in LOGITS_TOLERANCES:
        pytest.skip(f"engine {asr_case.spec.engine}: {engine.precision} weights are judged by "
                    "the trained model's word error rate (test_asr_wer), not by a logits "
                    "tolerance")
    features = asr_case.features(CLIP_SECONDS)
    check_close(engine.encode(features), reference.encode(features), asr_case.tolerance,
                "encoder states vs the reference", asr_case.context,
                axes=("clip", "position", "channel"))
    prompt = engine.prompt(len(CLIP_SECONDS))
    check_greedy_runs(engine.generate_greedy(features, prompt, N_NEW_TOKENS),
                      reference.generate_greedy(features, prompt, N_NEW_TOKENS),
                      asr_case.tolerance, "greedy decoding vs the reference",
                      asr_case.context)


def test_asr_chunked_long_audio_matches_reference(asr_case, record_property):
    """Audio longer than the window, cut into overlapping windows and stitched
    (conformance/chunked.py): the engine decodes the windows in one batch, the reference
    procedure decodes them one at a time on transformers float32; each window's greedy
    run must agree, and the stitched transcripts are compared."""
    asr_case.require("encoder", "cached_decoder", "batch")
    import torch
    from transformers import WhisperFeatureExtractor

    from infersuite.models.whisper import synth_audio

    engine, reference, config = asr_case.engine, asr_case.reference, asr_case.model.config
    if engine.precision not in LOGITS_TOLERANCES:
        pytest.skip(f"engine {asr_case.spec.engine}: {engine.precision} weights are judged by "
                    "the trained model's word error rate (test_asr_wer)")
    extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    windows = cut_windows(synth_audio(LONG_AUDIO_S, seed=5), extractor, CHUNK_S, STRIDE_S)
    n = len(windows.spans_s)
    batched = engine.generate_greedy(windows.features, engine.prompt(n), N_NEW_TOKENS)
    solo = [reference.generate_greedy(windows.features[i:i + 1], reference.prompt(1),
                                      N_NEW_TOKENS) for i in range(n)]
    expected = (torch.cat([run[0] for run in solo]), torch.cat([run[1] for run in solo]))
    result = check_chunked_runs(batched, expected, windows, asr_case.tolerance,
                                {**asr_case.context, "audio_s": LONG_AUDIO_S},
                                config.eos_token_id, special_ids_of(config))
    record_property("chunked", result.to_dict())


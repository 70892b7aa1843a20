"""The trained speech model's pieces: its tokens, the transcripts cut from a fixed-length
greedy run, word error counting and the WER gate's boundary, the shipped held-out clips."""

from __future__ import annotations

import pytest
import torch

from infersuite.conformance.wer import (
    MAX_WER_RISE_POINTS,
    WerGateError,
    check_wer_rise,
    score_transcripts,
)
from infersuite.models.speech_digits import (
    DIGIT_BASE,
    EOT,
    STORED_RATE,
    VOCAB_SIZE,
    WINDOW_S,
    compute_features,
    decode_tokens,
    encode_text,
    load_heldout,
    transcripts_from_greedy,
)


def test_transcripts_are_digit_tokens_and_an_end():
    assert encode_text("3 7 0") == [DIGIT_BASE + 3, DIGIT_BASE + 7, DIGIT_BASE, EOT]
    assert decode_tokens([DIGIT_BASE + 9, DIGIT_BASE + 1, EOT, DIGIT_BASE]) == "9 1"
    assert decode_tokens([DIGIT_BASE + 2, 0]) == "2 ?"
    with pytest.raises(ValueError, match="digits separated by spaces"):
        encode_text("37")


def test_a_transcript_ends_where_free_greedy_would_choose_the_end():
    """The engines' greedy runs never pick <eot>; the raw step logits say where it would
    have been picked, and the transcript stops there."""
    steps = 4
    logits = torch.full((2, steps, VOCAB_SIZE), -5.0)
    picks = [[DIGIT_BASE + 4, DIGIT_BASE + 2, EOT, DIGIT_BASE + 1],
             [DIGIT_BASE + 8, DIGIT_BASE + 8, DIGIT_BASE + 8, DIGIT_BASE + 8]]
    for row, ids in enumerate(picks):
        for step, token in enumerate(ids):
            logits[row, step, token] = 3.0
    tokens = logits.clone()
    tokens[..., EOT] = float("-inf")  # what the fixed-length run chose instead
    texts = transcripts_from_greedy(tokens.argmax(-1), logits)
    assert texts == ["4 2", "8 8 8 8"]


def test_word_errors_count_substitutions_deletions_and_insertions():
    result = score_transcripts(["1 2 3", "4 5"], ["1 9 3", "4 5 6"])
    assert (result.errors, result.words) == (2, 5)
    assert result.wer == pytest.approx(0.4)
    empty = score_transcripts(["1 2"], [""])
    assert (empty.errors, empty.words) == (2, 2)


def test_the_wer_gate_holds_at_its_bound_and_fails_one_error_past_it():
    truth = [" ".join("1" * 5)] * 20  # 100 words: one error is one point
    reference = score_transcripts(truth, truth)
    allowed = int(MAX_WER_RISE_POINTS)
    at_bound = score_transcripts(truth, ["2 1 1 1 1"] * allowed + truth[allowed:])
    assert check_wer_rise("engine", truth, at_bound, reference) == pytest.approx(allowed)
    past = score_transcripts(truth, ["2 1 1 1 1"] * (allowed + 1) + truth[allowed + 1:])
    with pytest.raises(WerGateError, match=r"is \+3\.00 points over .* gate: at most \+2 "
                                           r"points; 3 of 20 transcripts differ from the "
                                           r"reference's: clip 0: truth '1 1 1 1 1'"):
        check_wer_rise("engine", truth, past, reference)


def test_the_shipped_held_out_clips_fit_the_window():
    held = load_heldout()
    assert len(held.clips) == len(held.texts) == len(held.about) == 64
    assert len(set(held.texts)) == 64
    assert all(c.dtype.name == "int16" and 0 < len(c) < WINDOW_S * STORED_RATE
               for c in held.clips)
    features = compute_features(held.clips[:3])
    assert tuple(features.shape) == (3, 80, WINDOW_S * 100)

"""Long audio in overlapping windows: the procedure, and the check of an engine's chunked run.

A speech model hears one window at a time (Whisper: 30 seconds), so longer audio is cut
into windows that overlap and their transcripts are stitched together. The procedure is the
one transformers' speech pipeline follows for Whisper without timestamps:

- **cut** (``cut_windows``): the pipeline's own ``chunk_iter``. Windows of ``chunk_s``
  seconds start every ``chunk_s - 2 * stride_s`` seconds. The first has no overlap on its
  left and the last none on its right; the last is shorter, and the feature extractor
  pads it to the window.
- **decode**: each window's greedy run (engines/asr.py), cut where free greedy would stop
  (engines/asr.free_greedy_rows), with the model's special tokens dropped.
- **stitch** (``stitch_windows``): Whisper's longest-common-sequence merge, from
  transformers' Whisper tokenizer module. It aligns each window's tokens with the previous
  window's over their overlap, and keeps the left window's half of the overlap and the
  right window's other half.

The reference procedure decodes the windows one at a time on transformers float32. The
engine under test decodes them all in one batch, short last window included, as a
deployment does. ``check_chunked_runs`` holds each window's greedy run to the reference's
(``check_greedy_runs``: logits within tolerance, tokens the same but at a near-tie) and
then stitches both. The stitched transcript is a function of the windows' tokens, so it
differs from the reference's only after a window diverged at a near-tie; such windows are
named in the result, with whether the two transcripts are the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infersuite.conformance.compare import check_greedy_runs
from infersuite.engines.asr import free_greedy_rows

if TYPE_CHECKING:
    import numpy as np
    import torch

    from infersuite.conformance.tolerances import Tolerance


@dataclass(frozen=True)
class Windows:
    """Long audio cut into overlapping windows: features [windows, mels, frames] and each
    window's span of the audio in seconds."""

    features: torch.Tensor
    spans_s: list[tuple[float, float]]


def cut_windows(wave: np.ndarray, extractor: Any, chunk_s: float, stride_s: float) -> Windows:
    """`wave` (mono float32 at the extractor's rate) cut as transformers' speech pipeline
    cuts it: `chunk_s`-second windows overlapping `stride_s` seconds on each side."""
    import torch
    from transformers.pipelines.automatic_speech_recognition import chunk_iter

    rate = int(extractor.sampling_rate)
    chunk, stride = round(chunk_s * rate), round(stride_s * rate)
    if chunk <= 2 * stride:
        raise ValueError(f"chunk_s={chunk_s:g} must be more than twice stride_s={stride_s:g}: "
                         "windows would not advance")
    features, spans = [], []
    start = 0
    for item in chunk_iter(wave, extractor, chunk, stride, stride):
        features.append(item["input_features"])
        length = int(item["stride"][0])
        spans.append((start / rate, (start + length) / rate))
        start += chunk - 2 * stride
    return Windows(torch.cat(features).float(), spans)


def stitch_windows(rows: Sequence[Sequence[int]], special_ids: frozenset[int]) -> list[int]:
    """The windows' tokens in order, special tokens dropped, merged over their overlaps by
    Whisper's longest-common-sequence rule (transformers)."""
    from transformers.models.whisper.tokenization_whisper import (
        _find_longest_common_sequence,
    )

    kept = [[t for t in row if t not in special_ids] for row in rows]
    return [int(t) for t in _find_longest_common_sequence(kept)] if kept else []


def special_ids_of(config: Any) -> frozenset[int]:
    """The ids a transcript leaves out: the decoder's start, end of text, padding, bos."""
    names = ("decoder_start_token_id", "eos_token_id", "pad_token_id", "bos_token_id")
    return frozenset(int(v) for v in (getattr(config, n, None) for n in names) if v is not None)


@dataclass(frozen=True)
class ChunkedResult:
    """What a chunked run came to, for the test's report."""

    windows: int
    stitched: list[int]
    reference_stitched: list[int]
    near_tie_windows: list[int]  # windows whose tokens diverged at a forgiven near-tie

    def to_dict(self) -> dict[str, Any]:
        return {"windows": self.windows, "stitched_tokens": len(self.stitched),
                "same_transcript": self.stitched == self.reference_stitched,
                "near_tie_windows": self.near_tie_windows}


def check_chunked_runs(actual: tuple[torch.Tensor, torch.Tensor],
                       expected: tuple[torch.Tensor, torch.Tensor], windows: Windows,
                       tol: Tolerance, context: Mapping[str, Any], eos: int | None,
                       special_ids: frozenset[int]) -> ChunkedResult:
    """The engine's greedy runs of the windows (one batch) vs the reference's (one window
    at a time), window by window, then the stitched transcripts."""
    near_ties = []
    for row, span in enumerate(windows.spans_s):
        where = {**context, "window": row, "span_s": f"{span[0]:g}-{span[1]:g}"}
        got = (actual[0][row:row + 1], actual[1][row:row + 1])
        want = (expected[0][row:row + 1], expected[1][row:row + 1])
        check_greedy_runs(got, want, tol, "chunked window vs the reference", where)
        if free_greedy_rows(*got, eos) != free_greedy_rows(*want, eos):
            near_ties.append(row)
    stitched = stitch_windows(free_greedy_rows(*actual, eos), special_ids)
    reference = stitch_windows(free_greedy_rows(*expected, eos), special_ids)
    return ChunkedResult(len(windows.spans_s), stitched, reference, near_ties)

"""Word error rate of a speech engine against the truth and against transformers float32.

The trained speech model (models/speech_digits.py) has a known answer, so a runtime or a
precision is judged by what users of speech recognition judge: the word error rate on
held-out utterances. The rule:

- an engine computing in float32 must give the reference's transcripts (its greedy runs
  are held to the float32 logits tolerance by check_greedy_runs, near-ties allowed), so
  its WER equals the reference's;
- an engine in a reduced precision (bfloat16 arithmetic, 8-bit weights) may raise the WER
  by at most MAX_WER_RISE_POINTS over the reference's, counted in whole word errors.

Errors are jiwer's alignment counts (substitutions + deletions + insertions) over all
reference words, so "a rise of 2 points" on 224 words is at most 4 more errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from infersuite.conformance.compare import ConformanceError

# A reduced precision may add this many points of WER over float32 transformers (decided
# before measuring: the adder's loosest accuracy allowance, its 4-bit one, is 2 points).
MAX_WER_RISE_POINTS = 2.0
EXAMPLES_SHOWN = 5


class WerGateError(ConformanceError):
    """A speech engine's transcripts outside their gate."""


@dataclass(frozen=True)
class WerResult:
    """Transcripts of the held-out clips and their word errors against the truth."""

    transcripts: list[str]
    errors: int
    words: int

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else 0.0


def score_transcripts(truth: Sequence[str], transcripts: Sequence[str]) -> WerResult:
    """jiwer's word alignment of each transcript with its truth, summed over the clips."""
    import jiwer

    if len(truth) != len(transcripts):
        raise ValueError(f"{len(transcripts)} transcripts for {len(truth)} clips")
    out = jiwer.process_words(list(truth), list(transcripts))
    errors = out.substitutions + out.deletions + out.insertions
    words = out.substitutions + out.deletions + out.hits
    return WerResult(list(transcripts), errors, words)


def render_changes(truth: Sequence[str], reference: Sequence[str], got: Sequence[str],
                   names: tuple[str, str] = ("reference", "engine"),
                   whose: str = "the reference's", limit: int = EXAMPLES_SHOWN) -> str:
    """The clips whose transcript differs from the reference's: index, truth, both."""
    changed = [(i, t, r, g) for i, (t, r, g) in enumerate(zip(truth, reference, got,
                                                               strict=True)) if r != g]
    shown = "; ".join(f"clip {i}: truth {t!r}, {names[0]} {r!r}, {names[1]} {g!r}"
                      for i, t, r, g in changed[:limit])
    more = f" (+{len(changed) - limit} more)" if len(changed) > limit else ""
    return f"{len(changed)} of {len(got)} transcripts differ from {whose}" + (
        f": {shown}{more}" if changed else "")


def check_wer_rise(label: str, truth: Sequence[str], result: WerResult, reference: WerResult,
                   max_rise_points: float = MAX_WER_RISE_POINTS) -> float:
    """Raise when `result`'s WER is more than `max_rise_points` above the reference's
    (exact: in word errors over the same words); returns the rise in points."""
    rise = 100 * (Fraction(result.errors, result.words)
                  - Fraction(reference.errors, reference.words))
    if rise <= Fraction(max_rise_points).limit_denominator(10**6):
        return float(rise)
    raise WerGateError(
        f"{label}: WER {result.wer:.2%} ({result.errors}/{result.words} words) is "
        f"{float(rise):+.2f} points over transformers float32's {reference.wer:.2%} "
        f"({reference.errors}/{reference.words}); gate: at most +{max_rise_points:g} points; "
        f"{render_changes(truth, reference.transcripts, result.transcripts)}")

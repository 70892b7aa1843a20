"""TTFT, ITL, TPOT and E2E from one request's marks, exactly as docs/metrics.md defines them.

Marks: "start" (request start, before tokenization), one "token" mark per generated step
(the step's token ids are available), and "end" (the last token available to the caller,
detokenized). Stage marks in between ("tokenized", "padded", "generated") give stage times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

STAGES = ("tokenize_s", "pad_s", "prefill_s", "decode_s", "detokenize_s")
# mark that ends each stage, mark that starts it
_STAGE_BOUNDS = {
    "tokenize_s": ("start", "tokenized"),
    "pad_s": ("tokenized", "padded"),
    "prefill_s": ("padded", "token"),  # generate start -> first token: prefill + selection
    "decode_s": ("token", "last_token"),
    "detokenize_s": ("generated", "end"),
}


class TimelineError(ValueError):
    """Marks that cannot describe a request (e.g. no generated token)."""


@dataclass(frozen=True)
class RequestTiming:
    """One request's latencies in seconds; `itl_s` has n_generated - 1 gaps."""

    e2e_s: float
    ttft_s: float
    tpot_s: float  # NaN when n_generated < 2
    itl_s: tuple[float, ...]
    n_generated: int
    stages: dict[str, float] = field(default_factory=dict)


def compute_request_timing(labels: Sequence[str], times_s: Sequence[float]) -> RequestTiming:
    """Derive the request metrics from a resolved timeline (labels and seconds)."""
    if len(labels) != len(times_s):
        raise TimelineError(f"{len(labels)} labels but {len(times_s)} times")
    by_label: dict[str, float] = {}
    token_times = []
    for label, t in zip(labels, times_s, strict=True):
        if label == "token":
            token_times.append(t)
        else:
            by_label.setdefault(label, t)
    missing = [m for m in ("start", "end") if m not in by_label]
    if missing or not token_times:
        raise TimelineError(
            f"timeline lacks {missing or 'a generated token'}; marks were {list(labels)}")
    start, end = by_label["start"], by_label["end"]
    n = len(token_times)
    e2e = end - start
    ttft = token_times[0] - start
    itl = tuple(b - a for a, b in pairwise(token_times))
    tpot = (e2e - ttft) / (n - 1) if n > 1 else math.nan
    points = {**by_label, "token": token_times[0], "last_token": token_times[-1]}
    stages = {
        stage: points[b] - points[a]
        for stage, (a, b) in _STAGE_BOUNDS.items()
        if a in points and b in points
    }
    return RequestTiming(e2e, ttft, tpot, itl, n, stages)

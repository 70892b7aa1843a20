"""Per-token marks from inside `generate`: a streamer (host clock) or a logits processor.

`BaseStreamer.put()` is called first with the prompt, then once per decoding step with that
step's token ids (copied to the host). On CUDA that copy is itself a synchronization, so
there the suite marks from a LogitsProcessor instead: it runs once per step right after the
forward pass, before token selection, and records a CUDA event without waiting.
"""

from __future__ import annotations

from typing import Any

from transformers import LogitsProcessor
from transformers.generation.streamers import BaseStreamer

from infersuite.measure.clocks import Timeline


class TokenMarkStreamer(BaseStreamer):
    """Marks "token" on the timeline for every generated step (the prompt put is skipped)."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self._prompt_seen = False
        self.n_steps = 0

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.timeline.mark("token")
        self.n_steps += 1

    def end(self) -> None:
        """Nothing to flush: marks are already on the timeline."""


class TokenMarkProcessor(LogitsProcessor):
    """Marks "token" once per step, after the forward pass (the step's logits are ready).

    The token's selection (an argmax or a sample over one row of logits) follows the mark;
    it is not inside the mark's time.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.n_steps = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.timeline.mark("token")
        self.n_steps += 1
        return scores

"""Per-token marks from inside `generate`: a streamer (host clock) or a logits processor.

`BaseStreamer.put()` is called first with the prompt, then once per decoding step with that
step's token ids (copied to the host). On CUDA that copy is itself a synchronization, so
there the suite marks from a LogitsProcessor instead: it runs once per step right after the
forward pass, before token selection, and records a CUDA event without waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import LogitsProcessor
from transformers.generation.streamers import BaseStreamer


class TokenMarkStreamer(BaseStreamer):
    """Calls `on_token()` for every generated step (the prompt's put is skipped)."""

    def __init__(self, on_token: Callable[[], None]) -> None:
        self.on_token = on_token
        self._prompt_seen = False
        self.n_steps = 0

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.on_token()
        self.n_steps += 1

    def end(self) -> None:
        """Nothing to flush: marks are already on the timeline."""


class TokenMarkProcessor(LogitsProcessor):
    """Calls `on_token()` once per step, after the forward pass (the step's logits are ready).

    The token's selection (an argmax or a sample over one row of logits) follows the mark;
    it is not inside the mark's time.
    """

    def __init__(self, on_token: Callable[[], None]) -> None:
        self.on_token = on_token
        self.n_steps = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.on_token()
        self.n_steps += 1
        return scores

"""Per-token marks from inside `generate`, one definition on every device: a logits
processor that runs once per step right after the forward pass (the step's logits are
ready), before token selection. On CUDA the mark is an event recorded without waiting; on
the host it is a clock read at the same point.

A streamer would mark later (``BaseStreamer.put()`` gets the step's ids after they are
copied to the host), and on CUDA that copy is a synchronization every step: TTFT and ITL
would then mean different things on a CPU and on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import LogitsProcessor


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


def token_mark_hooks(on_token: Callable[[], None] | None) -> dict[str, Any]:
    """The keywords that make ``generate`` call `on_token` once per step (none without it)."""
    return {} if on_token is None else {"logits_processor": [TokenMarkProcessor(on_token)]}

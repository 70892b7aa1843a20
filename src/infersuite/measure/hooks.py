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

    `slowdown` (a fraction) plants a known slowdown for proving a regression gate: after
    the mark the processor spins on the clock for `slowdown` times the time since its
    previous call (or since it was made), so each step takes (1 + slowdown) times its own
    time. It spins rather than sleeps: a sleep of tens of microseconds overshoots by more
    than its own length. The same one processor marks and slows, so a slowed engine runs
    no extra processor call per step beside an unslowed one.
    """

    def __init__(self, on_token: Callable[[], None] | None, slowdown: float = 0.0) -> None:
        import time

        self.on_token, self.slowdown, self._clock = on_token, slowdown, time.perf_counter
        self.n_steps = 0
        self._last = self._clock()

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.on_token is not None:
            self.on_token()
        self.n_steps += 1
        if self.slowdown:
            now = self._clock()
            spin(self.slowdown * (now - self._last))
            self._last = self._clock()
        return scores


def spin(seconds: float) -> None:
    """Busy-wait `seconds` on the perf counter (a planted slowdown: exact where a sleep of
    tens of microseconds would overshoot)."""
    import time

    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def token_mark_hooks(on_token: Callable[[], None] | None,
                     slowdown: float = 0.0) -> dict[str, Any]:
    """The keywords that make ``generate`` call `on_token` once per step (and plant
    `slowdown`); none when there is neither."""
    if on_token is None and not slowdown:
        return {}
    return {"logits_processor": [TokenMarkProcessor(on_token, slowdown)]}

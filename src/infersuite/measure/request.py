"""One timed generation request through an engine, and its uninstrumented twin.

Timed window: request start (text in hand) → tokenize → pad → the engine's generation
(prefill, then fixed-length greedy decode; EOS cannot end it) → detokenize → end. E2E
therefore includes every stage; TTFT ends when the first generated token is available.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from infersuite.engines.base import Engine
from infersuite.engines.hf import pad_left
from infersuite.measure.clocks import make_timeline, synchronize
from infersuite.measure.tokens import RequestTiming, compute_request_timing


@dataclass(frozen=True)
class RequestInput:
    """A prompt as text (tokenized inside the window) or as token ids (no tokenize stage)."""

    texts: tuple[str, ...] | None
    ids: tuple[tuple[int, ...], ...]


def build_request_input(tokenizer: Any | None, texts: Sequence[str],
                        fallback_ids: Sequence[Sequence[int]], vocab_size: int) -> RequestInput:
    """Text prompts when the tokenizer's ids fit the model's vocabulary, else token ids."""
    if tokenizer is not None:
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        if all(ids_row and max(ids_row) < vocab_size for ids_row in ids):
            return RequestInput(tuple(texts), tuple(tuple(r) for r in ids))
    return RequestInput(None, tuple(tuple(r) for r in fallback_ids))


def _tokenize(tokenizer: Any | None, request: RequestInput) -> list[list[int]]:
    if request.texts is None or tokenizer is None:
        return [list(r) for r in request.ids]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in request.texts]


def _detokenize(tokenizer: Any | None, tokens: Any) -> None:
    if tokenizer is not None:
        tokenizer.batch_decode(tokens.tolist(), skip_special_tokens=True)
    else:
        tokens.tolist()


def run_timed_request(
    engine: Engine,
    request: RequestInput,
    n_new: int,
    now_ns: Callable[[], int] | None = None,
) -> RequestTiming:
    """Run one request through `engine` with per-token marks; return its E2E/TTFT/ITL/TPOT
    and stage times. The engine calls back as each step's token is available."""
    device = engine.device
    synchronize(device)  # boundary: nothing queued before the start mark
    timeline = make_timeline(device, now_ns)
    timeline.mark("start")
    rows = _tokenize(engine.tokenizer, request)
    timeline.mark("tokenized")
    ids, mask = pad_left(rows, engine.pad_id)
    timeline.mark("padded")
    new_tokens = engine.generate_stream(ids, mask, n_new, lambda: timeline.mark("token"))
    timeline.mark("generated")
    _detokenize(engine.tokenizer, new_tokens)
    timeline.mark("end")
    return compute_request_timing(timeline.labels(), timeline.resolve_s())


def run_plain_request(engine: Engine, request: RequestInput, n_new: int) -> float:
    """The same request without per-token callbacks, timed only at its two boundaries (s)."""
    import time

    synchronize(engine.device)
    start = time.perf_counter_ns()
    ids, mask = pad_left(_tokenize(engine.tokenizer, request), engine.pad_id)
    _detokenize(engine.tokenizer, engine.generate_stream(ids, mask, n_new, None))
    synchronize(engine.device)
    return (time.perf_counter_ns() - start) / 1e9

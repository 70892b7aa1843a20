"""One timed generation request through the whole pipeline, and its uninstrumented twin.

Timed window: request start (text in hand) → tokenize → pad → `generate` (prefill, then
fixed-length greedy decode; EOS cannot end it) → detokenize → end. E2E therefore includes
every stage; TTFT ends when the first generated token id is available.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from infersuite.engines import hf
from infersuite.measure.clocks import is_cuda_device, make_timeline, synchronize
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


def _generate_kwargs(model: Any, n_new: int) -> dict[str, Any]:
    return {
        "do_sample": False,
        "max_new_tokens": n_new,
        "min_new_tokens": n_new,  # with max: a fixed length, EOS suppressed
        "pad_token_id": hf.pad_id_of(model),
        "use_cache": True,
    }


def _tokenize(tokenizer: Any | None, request: RequestInput) -> list[list[int]]:
    if request.texts is None or tokenizer is None:
        return [list(r) for r in request.ids]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in request.texts]


def run_timed_request(
    model: Any,
    tokenizer: Any | None,
    request: RequestInput,
    n_new: int,
    device: str,
    now_ns: Callable[[], int] | None = None,
) -> RequestTiming:
    """Run one request with per-token marks; return its E2E/TTFT/ITL/TPOT and stage times."""
    import torch

    from infersuite.measure.hooks import TokenMarkProcessor, TokenMarkStreamer

    synchronize(device)  # boundary: nothing queued before the start mark
    timeline = make_timeline(device, now_ns)
    timeline.mark("start")
    rows = _tokenize(tokenizer, request)
    timeline.mark("tokenized")
    ids, mask = hf.pad_left(rows, hf.pad_id_of(model), device)
    timeline.mark("padded")
    hook_kwargs: dict[str, Any]
    if is_cuda_device(device) and now_ns is None:
        hook_kwargs = {"logits_processor": [TokenMarkProcessor(timeline)]}
    else:
        hook_kwargs = {"streamer": TokenMarkStreamer(timeline)}
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, **hook_kwargs,
                             **_generate_kwargs(model, n_new))
    timeline.mark("generated")
    new_tokens = out[:, ids.shape[1]:]
    if tokenizer is not None:
        tokenizer.batch_decode(new_tokens.tolist(), skip_special_tokens=True)
    else:
        new_tokens.tolist()
    timeline.mark("end")
    return compute_request_timing(timeline.labels(), timeline.resolve_s())


def run_plain_request(model: Any, tokenizer: Any | None, request: RequestInput, n_new: int,
                      device: str) -> float:
    """The same request without per-token hooks, timed only at its two boundaries (s)."""
    import time

    import torch

    synchronize(device)
    start = time.perf_counter_ns()
    rows = _tokenize(tokenizer, request)
    ids, mask = hf.pad_left(rows, hf.pad_id_of(model), device)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, **_generate_kwargs(model, n_new))
    new_tokens = out[:, ids.shape[1]:]
    if tokenizer is not None:
        tokenizer.batch_decode(new_tokens.tolist(), skip_special_tokens=True)
    else:
        new_tokens.tolist()
    synchronize(device)
    return (time.perf_counter_ns() - start) / 1e9

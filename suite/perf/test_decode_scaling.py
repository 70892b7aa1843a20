"""Naive (full recompute every step) vs KV-cached decoding as the generated length grows.

The report fits, per mode, the exponent b of  total decode time ∝ n_generated^b  (least
squares on log(median time) vs log(n)). Naive decoding processes P+1, P+2, ..., P+n tokens,
so its work grows ~n² once n ≫ P (b → 2); cached decoding processes one token per step
(b → 1). On tiny models a fixed per-step overhead dominates, pulling both toward 1.
Both modes go through the case's engine.
"""

from __future__ import annotations

import pytest

from infersuite.engines import hf
from infersuite.engines.base import naive_greedy
from infersuite.measure.clocks import make_timeline, synchronize

pytestmark = [pytest.mark.perf, pytest.mark.infer_cases(first_per_device=True)]

PROMPT_TOKENS = 8
LENGTHS = [8, 16, 32, 64, 128, pytest.param(240, marks=pytest.mark.slow)]


def _naive(engine, ids, mask, n_new):
    return naive_greedy(engine.forward_logits, ids, mask, n_new, list(engine.eos_ids))


def _cached(engine, ids, mask, n_new):
    return engine.generate_greedy(ids, mask, n_new)


DECODERS = {"naive": _naive, "cached": _cached}


def _timed_decode(decode, engine, ids, mask, n_new: int, device: str) -> float:
    synchronize(device)
    timeline = make_timeline(device)
    timeline.mark("start")
    tokens, _ = decode(engine, ids, mask, n_new)
    timeline.mark("end")
    assert tokens.shape[1] == n_new
    return timeline.resolve_s()[-1]


@pytest.mark.parametrize("n_new", LENGTHS)
@pytest.mark.parametrize("mode", list(DECODERS))
def test_decode_growth(benchmark, infer_perf, infer_case, mode, n_new):
    """Through the engine: naive decoding is the engine's full forward at every step,
    cached decoding the engine's own greedy generation (so --infer-ab compares both)."""
    if mode == "cached":
        infer_case.require("greedy")
    device = infer_case.case.device
    ids, mask = hf.pad_left([list(range(16, 16 + PROMPT_TOKENS))], 0, device)
    decode = DECODERS[mode]
    samples = infer_perf.measure_engine(
        benchmark, infer_case, lambda e: _timed_decode(decode, e, ids, mask, n_new, device),
        rounds=infer_perf.rounds(5), warmup_rounds=infer_perf.warmup(1),
        value=lambda seconds: seconds, metric="decode_s")
    infer_perf.record({"decode_s": samples}, primary="decode_s", group="decode-scaling",
                      extra={**infer_case.context, "mode": mode, "n_new_tokens": n_new,
                             "prompt_tokens": PROMPT_TOKENS,
                             "series": f"decode-{mode}/{infer_case.id}", "size": n_new})

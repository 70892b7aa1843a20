"""Prefill latency as the prompt grows: the engine's prefill (one pass over the prompt into a
fresh KV cache, the last position's logits)."""

from __future__ import annotations

import random

import pytest

from infersuite.engines import hf
from infersuite.measure.clocks import time_region

pytestmark = pytest.mark.perf

PROMPT_LENGTHS = (16, 64, 192)  # the zoo's tiny models have 256 positions


@pytest.mark.parametrize("prompt_len", PROMPT_LENGTHS)
def test_prefill_latency(benchmark, infer_perf, infer_case, prompt_len):
    """The engine's prefill (its own KV cache; the last position's logits)."""
    infer_case.require("cache")
    rng = random.Random(prompt_len)
    vocab = infer_case.engine.vocab_size
    ids, mask = hf.pad_left([[rng.randrange(16, vocab) for _ in range(prompt_len)]], 0)
    samples = infer_perf.measure_engine(
        benchmark, infer_case, lambda e: time_region(lambda: e.prefill(ids, mask), e.device)[1],
        rounds=infer_perf.rounds(40), warmup_rounds=infer_perf.warmup(2), value=float,
        metric="prefill_s")
    infer_perf.record({"prefill_s": samples}, primary="prefill_s", group="prefill",
                      extra={**infer_case.context, "prompt_tokens": prompt_len,
                             "series": f"prefill/{infer_case.id}", "size": prompt_len})

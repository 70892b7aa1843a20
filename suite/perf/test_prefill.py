"""Prefill latency as the prompt grows (one forward pass over the prompt, fresh cache)."""

from __future__ import annotations

import random

import pytest

from infersuite.engines import hf
from infersuite.measure.clocks import time_region

pytestmark = pytest.mark.perf

PROMPT_LENGTHS = (16, 64, 192)  # the zoo's tiny models have 256 positions


def _timed_prefill(model, ids, mask, device: str) -> float:
    return time_region(lambda: hf.prefill(model, ids, mask), device)[1]


@pytest.mark.parametrize("prompt_len", PROMPT_LENGTHS)
def test_prefill_latency(benchmark, infer_perf, infer_case, prompt_len):
    infer_case.require("transformers")  # times transformers calls directly
    model, device = infer_case.model, infer_case.case.device
    rng = random.Random(prompt_len)
    vocab = model.config.vocab_size
    ids, mask = hf.pad_left([[rng.randrange(16, vocab) for _ in range(prompt_len)]], 0, device)
    samples = infer_perf.measure(benchmark, lambda: _timed_prefill(model, ids, mask, device),
                                 rounds=infer_perf.rounds(40), warmup_rounds=infer_perf.warmup(2))
    infer_perf.record({"prefill_s": samples}, primary="prefill_s", group="prefill",
                      extra={**infer_case.context, "prompt_tokens": prompt_len,
                             "series": f"prefill/{infer_case.id}", "size": prompt_len})

"""Single-request E2E / TTFT / ITL / TPOT per model and dtype, with stage times and memory."""

from __future__ import annotations

import pytest

from infersuite.engines import hf
from infersuite.measure.clocks import timeline_kind
from infersuite.measure.memory import compute_memory_snapshot, reset_peaks
from infersuite.measure.records import compute_request_metrics
from infersuite.measure.request import run_timed_request

pytestmark = pytest.mark.perf

N_NEW_TOKENS = 8


def _kv_cache_after(case, prompt_len: int, n_new: int):
    """A cache holding what generation ends with: the prompt plus n_new - 1 fed-back tokens."""
    ids, mask = hf.pad_left([[5] * (prompt_len + n_new - 1)], 0, case.case.device)
    return hf.prefill(case.model, ids, mask)[1]


def test_request_latency(benchmark, infer_perf, infer_case, perf_request):
    infer_case.require("stream")
    engine, device = infer_case.engine, infer_case.case.device
    peak_scope = reset_peaks(device)  # this case's peaks, not the run's so far
    timings = infer_perf.measure_engine(
        benchmark, infer_case, lambda e: run_timed_request(e, perf_request, N_NEW_TOKENS),
        rounds=infer_perf.rounds(80), warmup_rounds=infer_perf.warmup(3),
        value=lambda t: t.e2e_s, metric="e2e_s", tokens_per_call=N_NEW_TOKENS)
    assert all(t.n_generated == N_NEW_TOKENS for t in timings), (
        f"generated {sorted({t.n_generated for t in timings})} tokens, expected a fixed "
        f"{N_NEW_TOKENS} (min_new_tokens == max_new_tokens)")
    prompt_len = len(perf_request.ids[0])
    memory: dict[str, object] = {}  # weight and KV-cache bytes: transformers models only
    if "transformers" in engine.capabilities:
        memory = compute_memory_snapshot(
            infer_case.model, _kv_cache_after(infer_case, prompt_len, N_NEW_TOKENS), device)
        memory["peak_scope"] = peak_scope
    infer_perf.record(
        compute_request_metrics(timings), primary="e2e_s", group="latency",
        extra={**infer_case.context, **engine.describe(), "n_new_tokens": N_NEW_TOKENS,
               "prompt_tokens": prompt_len, "tokenized_in_window": perf_request.texts is not None,
               "clock": timeline_kind(device), **memory})

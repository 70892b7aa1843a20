"""Throughput (generated tokens/s, requests/s) at a few batch sizes, over measured rounds."""

from __future__ import annotations

import pytest

from infersuite.measure.records import compute_request_metrics
from infersuite.measure.request import run_timed_request

pytestmark = [pytest.mark.perf, pytest.mark.infer_cases(first_per_device=True)]

N_NEW_TOKENS = 8


@pytest.mark.parametrize("batch", [1, 4, 16])
def test_throughput(benchmark, infer_perf, infer_case, case_request, batch):
    infer_case.require("stream", *(["padded_batch"] if batch > 1 else []))
    request = case_request(infer_case, batch)
    timings = infer_perf.measure_engine(
        benchmark, infer_case, lambda e: run_timed_request(e, request, N_NEW_TOKENS),
        rounds=infer_perf.rounds(15), warmup_rounds=infer_perf.warmup(2),
        value=lambda t: t.e2e_s, metric="e2e_s", tokens_per_call=batch * N_NEW_TOKENS)
    window_s = sum(t.e2e_s for t in timings)  # measured rounds only; warmup excluded
    tokens_per_s = batch * N_NEW_TOKENS * len(timings) / window_s
    requests_per_s = batch * len(timings) / window_s
    infer_perf.record(
        compute_request_metrics(timings), primary="e2e_s", group="throughput",
        extra={**infer_case.context, "batch": batch, "n_new_tokens": N_NEW_TOKENS,
               "tokens_per_s": tokens_per_s, "requests_per_s": requests_per_s,
               "headline": f"batch {batch}: {tokens_per_s:.1f} generated tokens/s, "
                           f"{requests_per_s:.2f} requests/s"})

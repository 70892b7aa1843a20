"""The same request on the CPU and the GPU, side by side in one report (GPU skips without one)."""

from __future__ import annotations

import pytest

from infersuite.measure.records import compute_request_metrics
from infersuite.measure.request import run_timed_request

pytestmark = pytest.mark.perf

N_NEW_TOKENS = 8


def test_device_side_by_side(benchmark, infer_perf, primary_case, case_request):
    model, tokenizer, device = primary_case.model, primary_case.tokenizer, primary_case.case.device
    request = case_request(primary_case, 1)
    timings = infer_perf.measure(
        benchmark, lambda: run_timed_request(model, tokenizer, request, N_NEW_TOKENS, device),
        rounds=infer_perf.rounds(30), warmup_rounds=infer_perf.warmup(3))
    metrics = compute_request_metrics(timings)
    infer_perf.record(metrics, primary="e2e_s", group="device-compare",
                      extra={**primary_case.context, "n_new_tokens": N_NEW_TOKENS})

"""The same request on the CPU and the GPU, side by side in one report (GPU skips without one)."""

from __future__ import annotations

import pytest

from infersuite.measure.records import compute_request_metrics
from infersuite.measure.request import run_timed_request

pytestmark = [pytest.mark.perf, pytest.mark.infer_cases(first_per_device=True)]

N_NEW_TOKENS = 8


def test_device_side_by_side(benchmark, infer_perf, infer_case, case_request):
    infer_case.require("stream")
    device = infer_case.case.device
    request = case_request(infer_case, 1)
    rounds = infer_perf.rounds(30)
    timings = infer_perf.measure_engine(
        benchmark, infer_case, lambda e: run_timed_request(e, request, N_NEW_TOKENS),
        rounds=rounds, warmup_rounds=infer_perf.warmup(3), value=lambda t: t.e2e_s,
        metric="e2e_s", tokens_per_call=N_NEW_TOKENS)
    measured = 1 if getattr(benchmark, "disabled", False) else rounds
    assert len(timings) >= measured, f"{len(timings)} timed requests for {measured} rounds"
    _check_timings(timings, device)
    metrics = compute_request_metrics(timings)
    infer_perf.record(metrics, primary="e2e_s", group="device-compare",
                      extra={**infer_case.context, "n_new_tokens": N_NEW_TOKENS})


def _check_timings(timings, device: str) -> None:
    """Each request generated the fixed N_NEW_TOKENS, and its clock moved forward:
    0 < TTFT <= E2E, 0 < TPOT <= E2E, one non-negative ITL gap per token after the first."""
    counts = sorted({t.n_generated for t in timings})
    assert counts == [N_NEW_TOKENS], (
        f"generated {counts} tokens on {device}, expected a fixed {N_NEW_TOKENS} "
        "(min_new_tokens == max_new_tokens)")
    for i, t in enumerate(timings):
        latencies_ok = 0 < t.ttft_s <= t.e2e_s and 0 < t.tpot_s <= t.e2e_s
        assert latencies_ok, (
            f"request {i} on {device}: TTFT {t.ttft_s!r} s, TPOT {t.tpot_s!r} s, "
            f"E2E {t.e2e_s!r} s; expected 0 < TTFT <= E2E and 0 < TPOT <= E2E")
        gaps_ok = len(t.itl_s) == N_NEW_TOKENS - 1 and min(t.itl_s) >= 0
        assert gaps_ok, (
            f"request {i} on {device}: inter-token gaps {t.itl_s}, expected "
            f"{N_NEW_TOKENS - 1} gaps >= 0")

"""What the per-token instrumentation costs: instrumented vs plain `generate`, interleaved.

Each round runs both on the same input, alternating which goes first, each timed at its
boundaries by the host clock (CUDA synchronized there). Overhead = median over rounds of
instrumented/plain - 1; the target is <= 2% of E2E.
"""

from __future__ import annotations

import statistics
import time
import warnings

import pytest

from infersuite.measure.clocks import synchronize
from infersuite.measure.request import run_plain_request, run_timed_request

pytestmark = [pytest.mark.perf, pytest.mark.infer_cases(first_per_device=True)]

N_NEW_TOKENS = 8
TARGET = 0.02


def _boundary_timed(fn, device: str) -> float:
    synchronize(device)
    start = time.perf_counter_ns()
    fn()
    synchronize(device)
    return (time.perf_counter_ns() - start) / 1e9


def test_instrumentation_overhead(benchmark, infer_perf, infer_case, case_request):
    infer_case.require("stream")
    device = infer_case.case.device
    request = case_request(infer_case, 1)
    calls: dict[int, int] = {}  # per engine: under --infer-ab, B alternates its own order

    def pair(engine) -> tuple[float, float]:
        def plain():
            return run_plain_request(engine, request, N_NEW_TOKENS)

        def instrumented():
            return run_timed_request(engine, request, N_NEW_TOKENS)

        calls[id(engine)] = calls.get(id(engine), 0) + 1
        if calls[id(engine)] % 2:
            return _boundary_timed(plain, device), _boundary_timed(instrumented, device)
        instr = _boundary_timed(instrumented, device)
        return _boundary_timed(plain, device), instr

    pairs = infer_perf.measure_engine(benchmark, infer_case, pair,
                                      rounds=infer_perf.rounds(40),
                                      warmup_rounds=infer_perf.warmup(2),
                                      value=lambda p: p[1], metric="instrumented_e2e_s")
    overhead = statistics.median(i / p for p, i in pairs) - 1.0
    headline = (f"instrumentation overhead {overhead * 100:+.2f}% of E2E (median of "
                f"{len(pairs)} interleaved pairs; target <= {TARGET * 100:.0f}%)")
    infer_perf.record({"plain_e2e_s": [p for p, _ in pairs],
                       "instrumented_e2e_s": [i for _, i in pairs]},
                      primary="instrumented_e2e_s", group="overhead",
                      extra={**infer_case.context, "overhead_ratio": overhead,
                             "headline": headline})
    if overhead > TARGET:
        warnings.warn(f"{headline}: above target on this run; interleaving cancels drift, "
                      "so repeat with more --infer-rounds before trusting it", stacklevel=1)

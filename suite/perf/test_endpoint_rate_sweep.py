"""A served model over request rate: arrivals (Poisson by default, --infer-arrivals) at
fractions and multiples of its single-stream capacity, enough requests per rate for a p99
interval, goodput under the SLO at each, and a bisection for the highest rate whose p99
upper bounds meet every target. Answers are checked at every rate (a sample against the
solo answers). Writes the rate plots and load.json; the lowest rate is the benchmark
record the gate compares."""

from __future__ import annotations

import asyncio
import statistics

import pytest

from infersuite.serving.load import (
    bisect_max_rate,
    build_stream_bodies,
    compute_arrival_times,
    meets_slo,
    run_load,
)
from infersuite.serving.server_metrics import compute_phase_means, scrape_phases
from infersuite.stats.percentiles import min_samples_for_percentile

pytestmark = [pytest.mark.perf, pytest.mark.endpoint, pytest.mark.slow,
              pytest.mark.infer_cases(serving=True)]
RATE_FACTORS = (0.5, 1.0, 1.5, 2.0, 3.0)  # x the single-stream capacity
MAX_TOKENS = 8
WARMUP = 8
REQUESTS = min_samples_for_percentile(99.0) + 12  # a two-sided p99 interval, and a margin
BISECTIONS = 3
BUDGET_S = 120.0  # per rate, beyond the schedule's own length: sending stops there
CHECK_EVERY = 10
SEED = 7


def test_endpoint_rate_sweep(infer_endpoint, infer_perf, infer_load):
    ep = infer_endpoint
    infer_load.check_target(ep)
    prompts = ep.prompts
    solo, extra, fixed = infer_load.solo_answers(ep, MAX_TOKENS)
    probe = asyncio.run(run_load(ep.client, build_stream_bodies(ep.client, prompts, 20,
                                                                MAX_TOKENS, **extra),
                                 concurrency=1, warmup=4))
    capacity = 1.0 / statistics.median(probe.metrics()["e2e_s"])
    infer_load.progress(f"{ep.case.id}: single-stream capacity {capacity:.1f} requests/s; "
                        f"{REQUESTS} requests per rate")
    rows, verdicts = [], {}

    def level(rate):
        pattern, burstiness = infer_load.arrivals
        arrivals = compute_arrival_times(pattern, rate, REQUESTS + WARMUP, SEED, burstiness)
        bodies = build_stream_bodies(ep.client, prompts, REQUESTS + WARMUP, MAX_TOKENS,
                                     **extra)
        before = scrape_phases(ep.client)
        # Bounded in requests (REQUESTS) and in seconds: the schedule's own length plus a
        # margin, so a slow server's lowest rate is measured whole rather than cut short.
        run = asyncio.run(run_load(ep.client, bodies, arrivals=arrivals, warmup=WARMUP,
                                   requested_rate_per_s=rate,
                                   max_duration_s=arrivals[-1] + BUDGET_S))
        phases = compute_phase_means(before, scrape_phases(ep.client))
        infer_load.check_answers(ep, run, solo, CHECK_EVERY, f"at {rate:.2f} requests/s")
        row = infer_load.add(ep, f"rate {rate:.2f}/s", None, run, phases, fixed)
        rows.append((row, run))
        ok, why = meets_slo(row["metrics"], infer_load.slo)
        failed = {k: v for k, v in row["counts"].items() if k not in ("ok", "usage_mismatch")
                  and v}
        if failed:
            ok, why = False, f"requests not ok: {failed}"
        if row["saturation"]:
            ok, why = False, "client saturated: " + "; ".join(row["saturation"])
        verdicts[rate] = ok
        infer_load.progress(f"{ep.case.id}: {rate:.2f} requests/s (sent at "
                            f"{row['achieved_rate_per_s'] or 0:.2f}/s), goodput "
                            f"{row['goodput_req_s']:.2f}/s, SLO {'met' if ok else 'missed'}: "
                            f"{why}")
        return ok

    for factor in RATE_FACTORS:
        level(factor * capacity)
    passing = max((r for r, ok in verdicts.items() if ok), default=None)
    failing = min((r for r, ok in verdicts.items() if not ok and (passing is None
                                                                  or r > passing)),
                  default=None)
    trail: list[tuple[float, bool]] = []
    if passing is None:
        best, note = None, f"the lowest rate tried ({min(verdicts):.2f}/s) misses it"
    elif failing is None:
        best, note = passing, "every rate tried meets it; the highest may be higher"
    else:
        best, trail = bisect_max_rate(level, passing, failing, BISECTIONS)
        note = f"bisected {BISECTIONS} times between {passing:.2f} and {failing:.2f}/s"
    infer_load.add_rate_sweep(ep.case.id, [row for row, _ in rows], best, trail, note)
    lowest_row, lowest_run = min(rows, key=lambda item: item[0]["requested_rate_per_s"])
    infer_perf.record(lowest_run.metrics(), primary="itl_s", group="endpoint rate sweep",
                      extra={"rate_per_s": lowest_row["requested_rate_per_s"],
                             "max_rate_meeting_slo": best})

"""A served model under load: TTFT, ITL, TPOT and E2E percentiles with intervals at each
concurrency, goodput under the SLO, and the knee over concurrency, timed from the stream
(infersuite.serving.load). Every level also checks answers: a sample of its temperature-0
requests must equal the same prompts answered alone, so a report never shows speed for
wrong output. Each level is a benchmark record, gated against a baseline like any other."""

from __future__ import annotations

import asyncio

import pytest

from infersuite.serving.load import build_stream_bodies, run_load
from infersuite.serving.server_metrics import compute_phase_means, scrape_phases

pytestmark = [pytest.mark.perf, pytest.mark.endpoint, pytest.mark.infer_cases(serving=True)]
CONCURRENCY = (1, 2, 4, 8)
REQUESTS = 48  # per level, after WARMUP
WARMUP = 4
MAX_TOKENS = 16
CHECK_EVERY = 6  # every 6th request of a level is checked against its solo answer
BUDGET_S = 60.0


@pytest.mark.parametrize("concurrency", CONCURRENCY, ids=[f"c{c}" for c in CONCURRENCY])
def test_endpoint_load(infer_endpoint, infer_perf, infer_load, concurrency):
    ep = infer_endpoint
    infer_load.check_target(ep)
    solo, extra, fixed = infer_load.solo_answers(ep, MAX_TOKENS)
    bodies = build_stream_bodies(ep.client, ep.prompts, REQUESTS + WARMUP, MAX_TOKENS, **extra)
    before = scrape_phases(ep.client)
    run = asyncio.run(run_load(ep.client, bodies, concurrency=concurrency, warmup=WARMUP,
                               max_duration_s=BUDGET_S))
    phases = compute_phase_means(before, scrape_phases(ep.client))
    infer_load.check_answers(ep, run, solo, CHECK_EVERY, f"under load (concurrency "
                                                         f"{concurrency})")
    row = infer_load.add(ep, f"concurrency {concurrency}", concurrency, run, phases, fixed)
    infer_perf.record(run.metrics(), primary="itl_s", group="endpoint load",
                      extra={"concurrency": concurrency, "server": ep.engine.info.get("server"),
                             "goodput_req_s": row["goodput_req_s"],
                             "client_saturated": bool(row["saturation"])})

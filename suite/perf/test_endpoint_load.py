"""A served model under load: TTFT, ITL, TPOT and E2E percentiles with intervals at each
concurrency, goodput under the SLO, and the knee over concurrency, timed from the stream
(infersuite.serving.load). Every level also checks answers: a sample of its temperature-0
requests must equal the same prompts answered alone, so a report never shows speed for
wrong output. Each level is a benchmark record, gated against a baseline like any other.
Under ``--infer-ab`` a level that passed its checks then runs interleaved rounds on A's
server and B's (``same:slowdown=0.05``, or another server spec), judged on each round's
median ITL."""

from __future__ import annotations

import asyncio
import statistics

import pytest

from infersuite.plugin.endpoint import EndpointCase
from infersuite.serving.load import build_stream_bodies, run_load
from infersuite.serving.server_metrics import compute_phase_means, scrape_phases

pytestmark = [pytest.mark.perf, pytest.mark.endpoint, pytest.mark.infer_cases(serving=True)]
CONCURRENCY = (1, 2, 4, 8)
REQUESTS = 48  # per level, after WARMUP
WARMUP = 4
MAX_TOKENS = 16
CHECK_EVERY = 6  # every 6th request of a level is checked against its solo answer
BUDGET_S = 60.0
AB_ROUNDS = 10  # first A/B rounds, more while the interval is wide (plugin/ab.py)


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
    ab_round = max(8, 3 * concurrency)  # requests per A/B round: several waves of the level
    solos = {id(ep.engine): solo}

    def load_round(engine):
        """One A/B round on `engine`'s server, its sampled answers checked against that
        server's own solo answers (a B with other settings may answer otherwise alone)."""
        server = ep if engine is ep.engine else EndpointCase(ep.case, engine, ep.config)
        if id(engine) not in solos:
            solos[id(engine)] = infer_load.solo_answers(server, MAX_TOKENS)[0]
        bodies = build_stream_bodies(engine.client, ep.prompts, ab_round, MAX_TOKENS, **extra)
        run = asyncio.run(run_load(engine.client, bodies, concurrency=concurrency,
                                   max_duration_s=BUDGET_S))
        failed = {k: v for k, v in run.counts().items()
                  if k not in ("ok", "usage_mismatch") and v}
        assert not failed, f"A/B round on {engine.spec} at concurrency {concurrency}: {failed}"
        infer_load.check_answers(server, run, solos[id(engine)], CHECK_EVERY,
                                 f"A/B round on {engine.spec} (concurrency {concurrency})")
        return run

    infer_perf.ab_rounds(ep.case, load_round, AB_ROUNDS, warmup_rounds=1, value=_median_itl,
                         metric="itl_s")


def _median_itl(run):
    itl = run.metrics()["itl_s"]
    assert itl, (f"an A/B round of {len(run.measured)} requests has no inter-token gap: each "
                 "stream came in one chunk, so there is no ITL to compare")
    return statistics.median(itl)

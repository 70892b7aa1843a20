"""A served model under load: TTFT, ITL, TPOT and E2E percentiles with intervals at each
concurrency, goodput under the SLO, and the knee over concurrency, timed from the stream
(infersuite.serving.load). Every level also checks answers: a sample of its temperature-0
requests must equal the same prompts answered alone, so a report never shows speed for
wrong output. Each level is a benchmark record, gated against a baseline like any other."""

from __future__ import annotations

import asyncio

import pytest

from infersuite.conformance.compare import ConformanceError, render_context
from infersuite.serving.load import accepts_ignore_eos, build_stream_bodies, run_load
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
    prompts = ep.prompts
    fixed = accepts_ignore_eos(ep.client, prompts[0])
    extra = {"ignore_eos": True} if fixed else {}
    solo = {p: ep.complete(p, max_tokens=MAX_TOKENS, **extra).text for p in prompts}
    bodies = build_stream_bodies(ep.client, prompts, REQUESTS + WARMUP, MAX_TOKENS, **extra)
    before = scrape_phases(ep.client)
    run = asyncio.run(run_load(ep.client, bodies, concurrency=concurrency, warmup=WARMUP,
                               max_duration_s=BUDGET_S))
    phases = compute_phase_means(before, scrape_phases(ep.client))
    # A sampled request that failed or was cut short is a wrong answer too.
    wrong = [(t.index, prompts[t.index % len(prompts)],
              t.text if t.status == "ok" else f"{t.status}: {t.error} (text {t.text!r})")
             for t in run.measured[::CHECK_EVERY] if t.status != "not-sent"
             and (t.status != "ok" or t.text != solo[prompts[t.index % len(prompts)]])]
    if wrong:
        index, prompt, text = wrong[0]
        raise ConformanceError(
            f"under load (concurrency {concurrency}) {len(wrong)} sampled answers differ from "
            f"the solo ones; request {index} ({prompt!r}): {text!r} vs alone "
            f"{solo[prompt]!r} [{render_context(ep.context)}]")
    row = infer_load.add(ep, f"concurrency {concurrency}", concurrency, run, phases, fixed)
    infer_perf.record(run.metrics(), primary="itl_s", group="endpoint load",
                      extra={"concurrency": concurrency, "server": ep.engine.info.get("server"),
                             "goodput_req_s": row["goodput_req_s"],
                             "client_saturated": bool(row["saturation"])})

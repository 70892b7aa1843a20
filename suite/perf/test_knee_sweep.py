"""Knee sweeps: batch size (powers of two) and Poisson arrival rate, with roofline efficiency.

One model per device: the first CPU model at its first dtype (llama-tiny, float32 by
default); on CUDA gemma3-270m-shape in bfloat16 unless --infer-model/--infer-dtype say
otherwise. Each hf-family engine sweeps its own generate(): ``--infer-engine hf-compiled``
adds the static-cache, torch.compile path (CUDA graphs on a GPU), whose first run at each
batch size compiles (the sweep's warm-up round takes it). Results go to the
``knee_recorder``; knee.json/knee.md/plots are written at session end.
"""

from __future__ import annotations

import statistics

import pytest

from infersuite.engines.hf_engine import HFEngine
from infersuite.measure.arrivals import (
    DRIVER_NOTE,
    compute_poisson_arrivals,
    run_poisson_point,
    run_poisson_sweep,
)
from infersuite.measure.energy import open_energy_counter
from infersuite.measure.sweep import SweepLimits, powers_of_two, run_batch_sweep
from infersuite.measure.sweep_hf import HFSweepRunner, build_fixed_prompt, describe_model_facts
from infersuite.plugin.cases import InferCase

pytestmark = [pytest.mark.perf, pytest.mark.infer_cases(
    first_per_device=True, gpu_default=("gemma3-270m-shape", "bfloat16"))]

PROMPT_TOKENS = 32
NEW_TOKENS = 16
PROMPT_INDEX = 3
SEED = 20260101
BENCH_LOAD = 2.0  # the Poisson benchmark's arrival rate, x the batch-1 service rate
BENCH_REQUESTS = 12


def _runner(case: InferCase, engine=None) -> HFSweepRunner:
    """transformers' generate() as the engine (default: the case's) runs it: eager (hf) or
    with a static cache and torch.compile (hf-compiled), its planted slowdown included;
    other engines have no batch sweep here."""
    engine = case.engine if engine is None else engine
    if not isinstance(engine, HFEngine):
        pytest.skip(f"engine {engine.spec}: the batch sweep drives transformers' generate(); "
                    "this engine has none")
    prompt = build_fixed_prompt(case.prompt_ids()[PROMPT_INDEX], PROMPT_TOKENS)
    return HFSweepRunner(engine.model, prompt, NEW_TOKENS, case.case.device,
                         engine.generate_kwargs(), engine.slowdown)


def _runners(case: InferCase, runner: HFSweepRunner):
    """The sweep runner of an engine: the case's, or B's under --infer-ab (built on its
    first call), so a benchmark times B's generate() beside A's."""
    runners = {id(case.engine): runner}

    def runner_of(engine) -> HFSweepRunner:
        if id(engine) not in runners:
            runners[id(engine)] = _runner(case, engine)
        return runners[id(engine)]

    return runner_of


def test_batch_size_knee(infer_case, knee_recorder, benchmark, infer_perf):
    device = infer_case.case.device
    runner = _runner(infer_case)
    # Before the sweep, so its budget is the sweep's own; in the case's dtype (MFU's peak).
    knee_recorder.calibration(device, infer_case.case.dtype)
    runner_of = _runners(infer_case, runner)

    def batch_one(engine) -> float:
        return runner_of(engine).generate(1)

    rounds = infer_perf.measure_engine(benchmark, infer_case, batch_one, rounds=10,
                                       warmup_rounds=2, value=lambda t: t, metric="round_s")
    infer_perf.record({"round_s": rounds}, primary="round_s", group="knee sweep",
                      extra={**infer_case.context, "batch": 1, "n_new_tokens": NEW_TOKENS})
    batches = powers_of_two(knee_recorder.max_batch_for(device))
    points = run_batch_sweep(runner, batches, NEW_TOKENS,
                             SweepLimits(budget_s=knee_recorder.budget_for(device)),
                             energy_counter=open_energy_counter(device))
    context = {**infer_case.context, "engine": str(infer_case.case.engine)}
    report = knee_recorder.add_sweep(context, points,
                                     describe_model_facts(infer_case.model), PROMPT_TOKENS)
    assert points[0].status == "ok", f"batch 1 did not run: {points[0].status}: {points[0].note}"
    assert report.power_knee is not None, report.warnings
    assert all(p.efficiency["mbu"] > 0.0 for p in points if p.status == "ok")


def test_poisson_concurrency(infer_case, knee_recorder, benchmark, infer_perf):
    """Requests arrive as a seeded Poisson process at rates from 0.5x to 16x the batch-1
    service rate; a dynamic batching loop serves them (see measure/arrivals.py for why this
    is not transformers' continuous batching). The benchmark the gate and --infer-ab see:
    the mean latency of one fixed arrival schedule (BENCH_REQUESTS at BENCH_LOAD x the
    batch-1 service rate), served again each round."""
    device = infer_case.case.device
    runner = _runner(infer_case)
    single_s = statistics.median(runner.generate(1) for _ in range(3))
    max_batch = knee_recorder.max_batch_for(device)
    rate = BENCH_LOAD / single_s
    arrivals = compute_poisson_arrivals(rate, BENCH_REQUESTS, SEED)
    runner_of = _runners(infer_case, runner)

    def served(engine) -> float:
        point = run_poisson_point(runner_of(engine).generate, arrivals, max_batch,
                                  NEW_TOKENS, rate)
        return statistics.fmean(point.latency_s)

    rounds = infer_perf.measure_engine(benchmark, infer_case, served, rounds=10,
                                       warmup_rounds=2, value=lambda t: t,
                                       metric="mean_latency_s")
    infer_perf.record({"mean_latency_s": rounds}, primary="mean_latency_s",
                      group="knee sweep", extra={**infer_case.context, "rate_per_s": rate,
                                                 "requests": BENCH_REQUESTS, "seed": SEED})
    rates = [m / single_s for m in (0.5, 1, 2, 4, 8, 16)]
    points = run_poisson_sweep(runner.generate, rates, n_requests=48, max_batch=max_batch,
                               new_tokens=NEW_TOKENS, seed=SEED,
                               budget_s=knee_recorder.budget_for(device) / 2)
    driver = f"{DRIVER_NOTE} Seed {SEED}, 48 requests per rate."
    knee_recorder.add_concurrency({**infer_case.context, "engine": str(infer_case.case.engine)},
                                  driver, points)
    assert points[0].status == "ok", points[0].note

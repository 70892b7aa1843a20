"""The load harness against a stub server whose timing is known: arrival schedules, the
rate it sends at, the percentiles it measures (within a stated error), tokens per chunk,
failures, and when it calls itself the bottleneck."""

from __future__ import annotations

import asyncio
import statistics

import pytest

from infersuite.serving.client import OpenAIClient
from infersuite.serving.load import (
    LoadRun,
    StreamTiming,
    build_stream_bodies,
    compute_arrival_times,
    run_load,
)
from infersuite.serving.stub import StubServer, StubTiming
from infersuite.stats.percentiles import compute_percentile

pytestmark = pytest.mark.endpoint
# The stated error of a measured percentile against the stub's configured one, after the
# harness's own floor (the same run against a zero-delay stub) is added to the latter:
# the larger of 1.5 ms and 10% (TTFT), of 0.5 ms and 10% (ITL).
TTFT_ERROR = (1.5e-3, 0.10)
ITL_ERROR = (0.5e-3, 0.10)


def test_arrival_schedules_have_the_requested_rate_and_shape():
    assert compute_arrival_times("constant", 50.0, 3, 0) == [0.02, 0.04, 0.06]
    for pattern, burstiness, cv in (("poisson", 1.0, 1.0), ("gamma", 4.0, 2.0),
                                    ("gamma", 0.25, 0.5)):
        times = compute_arrival_times(pattern, 20.0, 8000, seed=3, burstiness=burstiness)
        gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
        assert len(times) / times[-1] == pytest.approx(20.0, rel=0.05)
        assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(cv, rel=0.1)
    with pytest.raises(ValueError, match="expected one of constant, poisson, gamma"):
        compute_arrival_times("bursty", 1.0, 1, 0)


@pytest.fixture
def stub():
    servers = []

    def start(timing, **kwargs):
        server = StubServer(timing, **kwargs).start()
        servers.append(server)
        return server, OpenAIClient(server.url)

    yield start
    for server in servers:
        server.stop()


def _quantiles(samples, qs=(50.0, 90.0)):
    return [compute_percentile(samples, q) for q in qs]


def test_generator_sends_at_the_requested_rate(stub):
    _server, client = stub(StubTiming(ttft_s=0.005, itl_s=0.002))
    arrivals = compute_arrival_times("constant", 50.0, 150, seed=0)
    run = asyncio.run(run_load(client, build_stream_bodies(client, ["hi"], 150, 4),
                               arrivals=arrivals, requested_rate_per_s=50.0))
    late = [t.sent_s - run.timings[0].sent_s - (at - arrivals[0])
            for t, at in zip(run.timings, arrivals, strict=True)]
    print(f"achieved {run.achieved_rate_per_s:.2f} req/s of 50; send lateness p99 "
          f"{compute_percentile(late, 99.0) * 1e3:.2f} ms; client CPU "
          f"{run.client_cpu_share:.0%}; loop lag p99 "
          f"{compute_percentile(run.loop_lag_s, 99.0) * 1e3:.2f} ms")
    assert run.achieved_rate_per_s == pytest.approx(50.0, rel=0.02)
    assert compute_percentile(late, 99.0) < 0.005
    assert run.counts() == {"ok": 150, "usage_mismatch": 0}
    assert run.saturation() == []


def test_measured_percentiles_match_the_stub(stub):
    """TTFT ~ U(16, 24) ms, per-token ITL ~ U(4, 6) ms, one request at a time; the floor
    is the same run against a stub that answers at once (the client's and the stub's own
    time per request and per chunk, reported)."""
    timing = StubTiming(ttft_s=0.020, itl_s=0.005, spread=0.2)
    _floor_server, floor_client = stub(StubTiming(ttft_s=1e-6, itl_s=1e-6, spread=0.0))
    _server, client = stub(timing, seed=1)

    def measure(target):
        run = asyncio.run(run_load(target, build_stream_bodies(target, ["hi"], 104, 16),
                                   concurrency=1, warmup=4))
        return run, run.metrics()

    _, floor = measure(floor_client)
    run, measured = measure(client)
    floors = {k: compute_percentile(floor[k], 50.0) for k in ("ttft_s", "itl_s")}
    print(f"harness floor (zero-delay stub): TTFT {floors['ttft_s'] * 1e3:.2f} ms, ITL "
          f"{floors['itl_s'] * 1e3:.3f} ms; client CPU {run.client_cpu_share:.0%}")
    for metric, (absolute, relative) in (("ttft_s", TTFT_ERROR), ("itl_s", ITL_ERROR)):
        for q, got in zip((50.0, 90.0), _quantiles(measured[metric]), strict=True):
            want = timing.quantile(metric, q / 100) + floors[metric]
            print(f"{metric} p{q:g}: measured {got * 1e3:.3f} ms, configured + floor "
                  f"{want * 1e3:.3f} ms")
            assert abs(got - want) <= max(absolute, relative * want), (metric, q, got, want)
    assert len(measured["itl_s"]) == 100 * 15
    assert floors["itl_s"] < 0.1 * timing.itl_s, "the client's overhead is not small"


def test_a_chunk_of_several_tokens_counts_each(stub):
    _server, client = stub(StubTiming(ttft_s=0.005, itl_s=0.004, spread=0.0,
                                     tokens_per_chunk=4))
    run = asyncio.run(run_load(client, build_stream_bodies(client, ["hi"], 12, 16),
                               concurrency=2))
    timing = run.timings[0]
    assert timing.chunk_tokens == [4, 4, 4, 4]
    assert timing.n_tokens == timing.usage_tokens == 16
    itl = run.metrics()["itl_s"]
    assert len(itl) == 12 * 12  # 3 gaps x 4 tokens per request
    assert compute_percentile(itl, 50.0) == pytest.approx(0.004, abs=0.001)


def test_failures_and_timeouts_are_counted_not_dropped(stub):
    _server, client = stub(StubTiming(ttft_s=0.002, itl_s=0.001), fail_every=4)
    run = asyncio.run(run_load(client, build_stream_bodies(client, ["hi"], 20, 4),
                               concurrency=2))
    assert run.counts() == {"ok": 15, "error": 5, "usage_mismatch": 0}
    assert "HTTP 500" in next(t.error for t in run.timings if t.status == "error")
    assert len(run.metrics()["e2e_s"]) == 15
    slow, _ = stub(StubTiming(ttft_s=0.5, itl_s=0.001))
    impatient = OpenAIClient(slow.url, timeout_s=0.1)
    run = asyncio.run(run_load(impatient, build_stream_bodies(impatient, ["hi"], 3, 2),
                               concurrency=3))
    assert run.counts() == {"timeout": 3, "usage_mismatch": 0}
    assert run.goodput({"ttft_s": 1.0}) == 0.0


def test_a_stream_cut_short_is_counted_not_timed(stub):
    _server, client = stub(StubTiming(ttft_s=0.002, itl_s=0.001), cut_every=3)
    run = asyncio.run(run_load(client, build_stream_bodies(client, ["hi"], 12, 8),
                               concurrency=2))
    assert run.counts() == {"ok": 8, "truncated": 4, "usage_mismatch": 0}
    assert len(run.metrics()["e2e_s"]) == 8


def test_budget_ends_sending_and_says_so(stub):
    _server, client = stub(StubTiming(ttft_s=0.002, itl_s=0.001))
    arrivals = compute_arrival_times("constant", 10.0, 20, seed=0)
    run = asyncio.run(run_load(client, build_stream_bodies(client, ["hi"], 20, 2),
                               arrivals=arrivals, max_duration_s=0.5))
    counts = run.counts()
    assert counts["ok"] + counts["not-sent"] == 20
    assert 3 <= counts["ok"] <= 6


def test_load_targets_are_loopback_unless_allowed():
    from infersuite.serving.load import is_loopback_url

    assert is_loopback_url("http://127.0.0.1:8000")
    assert is_loopback_url("http://localhost:8000/v1")
    assert is_loopback_url("http://[::1]:8000")
    assert not is_loopback_url("http://10.0.0.5:8000")
    assert not is_loopback_url("https://api.example.com")


def test_a_saturated_client_is_flagged():
    timings = [StreamTiming(i, i * 0.1 + 0.02 * i, scheduled_s=i * 0.1, end_s=i * 0.1 + 0.5)
               for i in range(11)]
    run = LoadRun(timings, wall_s=1.0, requested_rate_per_s=20.0, concurrency=None,
                  client_cpu_s=0.9, loop_lag_s=[0.02] * 100)
    reasons = run.saturation()
    assert any("event-loop lag p99 20.0 ms" in r for r in reasons)
    assert any("requests left late against their schedule: p99 198.0 ms" in r
               for r in reasons)
    on_time = LoadRun([StreamTiming(i, i * 0.1, scheduled_s=i * 0.1) for i in range(11)],
                      wall_s=1.0, requested_rate_per_s=12.0, concurrency=None,
                      client_cpu_s=0.1, loop_lag_s=[0.001] * 100)
    assert on_time.saturation() == []  # a schedule slower than nominal is not the client's


def test_goodput_counts_requests_meeting_every_target():
    def done(index, ttft, e2e, n):
        timing = StreamTiming(index, 0.0, chunk_s=[ttft + 0.01 * i for i in range(n)],
                              chunk_tokens=[1] * n, end_s=e2e)
        return timing

    run = LoadRun([done(0, 0.01, 0.2, 5), done(1, 0.3, 0.5, 5), done(2, 0.01, 2.0, 5)],
                  wall_s=3.0, requested_rate_per_s=None, concurrency=2, client_cpu_s=0.1,
                  loop_lag_s=[])
    assert run.measured_wall_s == pytest.approx(2.0)  # first send (0) to last end (2.0)
    assert run.goodput({"ttft_s": 0.1}) == pytest.approx(1.0)  # requests 0 and 2
    assert run.goodput({"ttft_s": 0.1, "e2e_s": 0.5}) == pytest.approx(0.5)


def test_a_slowdown_planted_in_the_client_stretches_every_time(stub):
    """A server engine's ``slowdown=F`` (for proving a gate on a native server): the same
    traffic, read on a clock 1 + F as fast from each send, so TTFT, ITL and E2E grow by F."""
    _server, client = stub(StubTiming(ttft_s=0.006, itl_s=0.003, spread=0.0))

    def medians(slowdown):
        client.slowdown = slowdown
        run = asyncio.run(run_load(client, build_stream_bodies(client, ["hi"], 24, 8),
                                   concurrency=1, warmup=4))
        return {k: statistics.median(v) for k, v in run.metrics().items()}

    plain, planted = medians(0.0), medians(0.5)
    for metric in ("ttft_s", "itl_s", "e2e_s"):
        assert 1.35 < planted[metric] / plain[metric] < 1.65, (metric, plain, planted)

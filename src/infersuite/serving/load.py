"""Load on a server: arrival schedules, streamed requests timed chunk by chunk, and what a
load run can say about the client itself.

Timing of one streamed request (docs/metrics.md has the definitions): the clock starts when
the request is handed to the HTTP client; TTFT ends at the first chunk that carries text;
each later chunk adds its gap to ITL once per token it carries (a chunk of k tokens after
a gap g gives k samples of g / k), so a server that batches tokens into chunks is not
credited with a k-times shorter ITL; E2E ends at the last event; TPOT = (E2E - TTFT) /
(tokens - 1). Tokens per chunk come from the chunk's logprobs (requests ask for
``logprobs=1``); the total is cross-checked against ``usage.completion_tokens``. A request
that fails, times out or ends without tokens is counted with its reason, never dropped.

The client measures itself: how late each request left against its schedule, the achieved
send rate, its process's CPU time over the run's wall time, and the event loop's lag (how
late a 1 ms ticker wakes). A run where the client was the bottleneck is flagged
(``saturated``). Rates (goodput, tokens/s) are over the measured window: from the first
request after the warm-up to the last one's end.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

ARRIVALS = ("constant", "poisson", "gamma")
LAG_TICK_S = 0.001
# The client is called saturated when its event loop wakes more than this late at p99,
# or when its requests leave more than this late against their schedule at p99.
MAX_LOOP_LAG_S = 0.005
MAX_SEND_LATENESS_S = 0.010


def is_loopback_url(url: str) -> bool:
    """Whether `url` names this machine (127.0.0.0/8, ::1 or localhost)."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def compute_arrival_times(pattern: str, rate_per_s: float, n: int, seed: int,
                          burstiness: float = 1.0) -> list[float]:
    """Send times (s from the start) of `n` requests at `rate_per_s` on average.

    constant: evenly spaced; poisson: exponential gaps; gamma: gamma gaps of shape
    1 / burstiness (burstiness 1 is Poisson, above 1 burstier, below 1 more regular), the
    parametrization vLLM's benchmark uses."""
    from infersuite.measure.arrivals import compute_poisson_arrivals

    if pattern not in ARRIVALS:
        raise ValueError(f"arrivals {pattern!r}: expected one of {', '.join(ARRIVALS)}")
    if not rate_per_s > 0 or not burstiness > 0:
        raise ValueError(f"rate {rate_per_s!r} and burstiness {burstiness!r} must be > 0")
    if pattern == "constant":
        return [(i + 1) / rate_per_s for i in range(n)]
    if pattern == "poisson":
        return compute_poisson_arrivals(rate_per_s, n, seed)
    shape = 1.0 / burstiness
    rng, t, times = random.Random(seed), 0.0, []
    for _ in range(n):
        t += rng.gammavariate(shape, 1.0 / (rate_per_s * shape))
        times.append(t)
    return times


@dataclass
class StreamTiming:
    """One streamed request: when it was sent, when each text chunk came and how many
    tokens it carried, when it ended, and how it ended."""

    index: int
    sent_s: float
    chunk_s: list[float] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)
    end_s: float | None = None
    usage_tokens: int | None = None
    status: str = "ok"  # ok | error | timeout | truncated | empty | not-sent
    error: str | None = None
    text: str = ""
    scheduled_s: float | None = None  # when the arrival schedule said to send it

    @property
    def n_tokens(self) -> int:
        return sum(self.chunk_tokens)

    @property
    def ttft_s(self) -> float | None:
        return self.chunk_s[0] - self.sent_s if self.chunk_s else None

    @property
    def e2e_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.sent_s

    @property
    def itl_s(self) -> list[float]:
        gaps = []
        for before, after, tokens in zip(self.chunk_s, self.chunk_s[1:], self.chunk_tokens[1:],
                                         strict=False):
            gaps += [(after - before) / tokens] * tokens
        return gaps

    @property
    def tpot_s(self) -> float | None:
        if self.n_tokens < 2 or self.ttft_s is None or self.e2e_s is None:
            return None
        return (self.e2e_s - self.ttft_s) / (self.n_tokens - 1)

    @property
    def usage_mismatch(self) -> bool:
        return self.usage_tokens is not None and self.usage_tokens != self.n_tokens


@dataclass
class LoadRun:
    """A load run's requests and what the client saw of itself."""

    timings: list[StreamTiming]
    wall_s: float
    requested_rate_per_s: float | None
    concurrency: int | None
    client_cpu_s: float
    loop_lag_s: list[float]
    warmup: int = 0

    @property
    def measured(self) -> list[StreamTiming]:
        return self.timings[self.warmup:]

    @property
    def achieved_rate_per_s(self) -> float | None:
        """Requests per second actually sent (after the warm-up)."""
        sent = [t.sent_s for t in self.measured if t.status != "not-sent"]
        if len(sent) < 2 or sent[-1] <= sent[0]:
            return None
        return (len(sent) - 1) / (sent[-1] - sent[0])

    @property
    def measured_wall_s(self) -> float:
        """From the first measured request's send to the last measured request's end: the
        window the statistics describe (the warm-up left out)."""
        sent = [t for t in self.measured if t.status != "not-sent"]
        if not sent:
            return 0.0
        ends = [t.end_s for t in sent if t.end_s is not None]
        return max(ends, default=sent[0].sent_s) - sent[0].sent_s

    @property
    def send_lateness_s(self) -> list[float]:
        """How late each scheduled request left (arrival-schedule runs only)."""
        return [t.sent_s - t.scheduled_s for t in self.measured
                if t.scheduled_s is not None and t.status != "not-sent"]

    @property
    def client_cpu_share(self) -> float:
        return self.client_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for t in self.measured:
            found[t.status] = found.get(t.status, 0) + 1
        found["usage_mismatch"] = sum(t.usage_mismatch for t in self.measured)
        return found

    def saturation(self) -> list[str]:
        """Why the client, not the server, may have set the pace (empty: it did not): its
        event loop woke late, or it sent requests late against their schedule (a sampled
        Poisson schedule's own rate differs from the nominal one, so lateness is the test)."""
        from infersuite.stats.percentiles import compute_percentile

        reasons = []
        lag = compute_percentile(self.loop_lag_s, 99.0) if self.loop_lag_s else None
        if lag is not None and lag > MAX_LOOP_LAG_S:
            reasons.append(f"event-loop lag p99 {lag * 1e3:.1f} ms > "
                           f"{MAX_LOOP_LAG_S * 1e3:g} ms")
        lateness = self.send_lateness_s
        late = compute_percentile(lateness, 99.0) if lateness else None
        if late is not None and late > MAX_SEND_LATENESS_S:
            reasons.append(f"requests left late against their schedule: p99 "
                           f"{late * 1e3:.1f} ms > {MAX_SEND_LATENESS_S * 1e3:g} ms")
        return reasons

    def metrics(self) -> dict[str, list[float]]:
        """Raw samples (seconds) of the completed requests, the shape PerfRecord takes."""
        done = [t for t in self.measured if t.status == "ok"]
        return {"ttft_s": [t.ttft_s for t in done if t.ttft_s is not None],
                "itl_s": [gap for t in done for gap in t.itl_s],
                "tpot_s": [t.tpot_s for t in done if t.tpot_s is not None],
                "e2e_s": [t.e2e_s for t in done if t.e2e_s is not None]}

    def goodput(self, slo: Mapping[str, float]) -> float:
        """Requests per second that completed and met every per-request target in `slo`
        (``ttft_s``, ``tpot_s``, ``e2e_s``), over the measured window."""
        good = 0
        for t in self.measured:
            if t.status != "ok":
                continue
            values = {"ttft_s": t.ttft_s, "tpot_s": t.tpot_s, "e2e_s": t.e2e_s}
            if all(values[k] is not None and values[k] <= v  # type: ignore[operator]
                   for k, v in slo.items()):
                good += 1
        window = self.measured_wall_s
        return good / window if window > 0 else 0.0


def _chunk_tokens(event: Mapping[str, Any]) -> tuple[str, int]:
    text, tokens = "", 0
    for choice in event.get("choices") or []:
        text += choice.get("text") or (choice.get("delta") or {}).get("content") or ""
        logprobs = choice.get("logprobs") or {}
        if "tokens" in logprobs:
            tokens += len(logprobs.get("tokens") or [])
        elif "content" in logprobs:
            tokens += len(logprobs.get("content") or [])
    return text, tokens


async def _one(http: httpx.AsyncClient, path: str, body: Mapping[str, Any],
               timing: StreamTiming, clock: Any, slowdown: float = 0.0) -> None:
    """One streamed request into `timing`. The stream is read to its end (after
    ``[DONE]`` too, so the connection is reused); an error event, a stream without
    ``[DONE]``, or any failure marks the request instead of escaping.

    `slowdown` plants a known slowdown in the client, to prove a gate on a server the suite
    cannot slow from inside: the request's times are read on a clock (1 + slowdown) times
    as fast from its send, so TTFT, ITL and E2E grow by that fraction while the server sees
    the same traffic (docs/gate.md says why it does not also hold the request longer)."""
    done, real_clock = False, clock
    if slowdown:
        def clock() -> float:
            return float(timing.sent_s + (1.0 + slowdown) * (real_clock() - timing.sent_s))
    try:
        async with http.stream("POST", path, json=dict(body)) as response:
            if response.status_code != 200:
                await response.aread()
                timing.status, timing.error = "error", \
                    f"HTTP {response.status_code}: {response.text[:200]}"
                timing.end_s = clock()
                return
            async for line in response.aiter_lines():
                if not line.startswith("data:") or done:
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                    timing.end_s = clock()
                    continue
                now = clock()
                event = json.loads(payload)
                if not isinstance(event, dict):
                    raise ValueError(f"a stream event is not a JSON object: {payload[:80]!r}")
                if event.get("error"):
                    raise ValueError(f"error event in the stream: {payload[:200]}")
                usage = event.get("usage")
                if isinstance(usage, dict):
                    timing.usage_tokens = usage.get("completion_tokens")
                text, tokens = _chunk_tokens(event)
                if tokens or text:
                    timing.chunk_s.append(now)
                    timing.chunk_tokens.append(max(tokens, 1))
                    timing.text += text
        if not done:
            timing.status, timing.error = "truncated", "the stream ended without [DONE]"
        elif not timing.chunk_s:
            timing.status, timing.error = "empty", "the stream carried no tokens"
    except httpx.TimeoutException as exc:
        timing.status, timing.error = "timeout", str(exc) or "timeout"
    except Exception as exc:  # a request's failure is its status, never the run's
        timing.status, timing.error = "error", f"{type(exc).__name__}: {exc}"
    if timing.end_s is None or timing.status != "ok":
        timing.end_s = clock()


async def _lag_ticker(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(LAG_TICK_S)
        lags.append(max(0.0, loop.time() - before - LAG_TICK_S))


async def run_load(client: Any, bodies: Sequence[Mapping[str, Any]], *,
                   arrivals: Sequence[float] | None = None, concurrency: int | None = None,
                   max_duration_s: float = 60.0, warmup: int = 0,
                   requested_rate_per_s: float | None = None) -> LoadRun:
    """Send `bodies` (streamed completions requests) on an arrival schedule (`arrivals`,
    s from the start) or `concurrency` at a time; stop sending after `max_duration_s`
    (the requests not sent are counted as "not-sent"). The first `warmup` requests are
    kept out of the statistics."""
    if (arrivals is None) == (concurrency is None):
        raise ValueError("give either arrivals (a schedule) or concurrency")
    if arrivals is not None and len(arrivals) != len(bodies):
        raise ValueError(f"{len(bodies)} requests but {len(arrivals)} arrival times")
    clock = time.perf_counter
    slowdown = client.slowdown  # a planted one (a server engine's slowdown=)
    path = "/v1/chat/completions" if bodies and "messages" in bodies[0] else "/v1/completions"
    timings: list[StreamTiming] = []
    lags: list[float] = []
    stop = asyncio.Event()
    limit = concurrency or len(bodies) or 1
    queue = list(enumerate(bodies)) if arrivals is None else []
    late = f"not sent: after the {max_duration_s:g} s budget"
    cpu0, start = time.process_time(), clock()
    async with client.async_http(max_connections=min(limit, 256)) as http:
        ticker = asyncio.create_task(_lag_ticker(lags, stop))
        tasks = []
        try:
            if arrivals is not None:
                for index, (body, at) in enumerate(zip(bodies, arrivals, strict=True)):
                    if at > max_duration_s:
                        timings += [StreamTiming(i, start + arrivals[i], status="not-sent",
                                                 error=late) for i in range(index, len(bodies))]
                        break
                    delay = start + at - clock()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    timing = StreamTiming(index, clock(), scheduled_s=start + at)
                    timings.append(timing)
                    tasks.append(asyncio.create_task(_one(http, path, body, timing, clock,
                                                          slowdown)))
            else:
                async def worker() -> None:
                    while queue and clock() - start <= max_duration_s:
                        index, body = queue.pop(0)
                        timing = StreamTiming(index, clock())
                        timings.append(timing)
                        await _one(http, path, body, timing, clock, slowdown)

                tasks = [asyncio.create_task(worker()) for _ in range(limit)]
            await asyncio.gather(*tasks)
        finally:
            stop.set()
            await ticker
    timings += [StreamTiming(i, clock(), status="not-sent", error=late) for i, _ in queue]
    timings.sort(key=lambda t: t.index)
    return LoadRun(timings, clock() - start, requested_rate_per_s, concurrency,
                   time.process_time() - cpu0, lags, warmup)


def accepts_ignore_eos(client: Any, prompt: str) -> bool:
    """Whether the server takes ``ignore_eos`` (vLLM does): then load requests ask for a
    fixed output length; otherwise the lengths actually received are reported."""
    body = client.request_body(prompt, max_tokens=2, temperature=0.0, ignore_eos=True)
    return bool(client.post(client.path_of(body), json=body).status_code == 200)


def build_stream_bodies(client: Any, prompts: Sequence[str], n: int, max_tokens: int,
                        **params: Any) -> list[dict[str, Any]]:
    """`n` streamed requests cycling over `prompts`, asking for logprobs (tokens per chunk)
    and usage; temperature 0 unless `params` say else."""
    return [client.request_body(prompts[i % len(prompts)], max_tokens=max_tokens, stream=True,
                                logprobs=1, stream_options={"include_usage": True},
                                **{"temperature": 0.0, **params}) for i in range(n)]


def meets_slo(summaries: Mapping[str, Mapping[str, Any]], slo: Mapping[str, float]
              ) -> tuple[bool, str]:
    """Whether every target in `slo` holds at p99 with 95% confidence: the upper bound of
    the metric's p99 interval is within the target. A p99 without an upper bound (too few
    requests) does not prove it. Returns (verdict, why)."""
    reasons = []
    for metric, target in slo.items():
        p99 = ((summaries.get(metric) or {}).get("percentiles") or {}).get("p99") or {}
        upper = p99.get("upper")
        if upper is None:
            reasons.append(f"{metric} p99 has no upper bound ({p99.get('n', 0)} samples)")
        elif upper > target:
            reasons.append(f"{metric} p99 upper bound {upper * 1e3:.1f} ms > "
                           f"{target * 1e3:g} ms")
    return not reasons, "; ".join(reasons) or "every p99 upper bound within its target"


def bisect_max_rate(meets_at: Any, passing: float, failing: float, steps: int
                    ) -> tuple[float, list[tuple[float, bool]]]:
    """The highest rate known to meet the SLO after `steps` bisections between a rate that
    meets it and a higher one that does not (`meets_at(rate) -> bool` runs a load level).
    Returns (that rate, the bisection's (rate, verdict) trail)."""
    trail = []
    for _ in range(steps):
        middle = (passing + failing) / 2
        verdict = bool(meets_at(middle))
        trail.append((middle, verdict))
        if verdict:
            passing = middle
        else:
            failing = middle
    return passing, trail

"""The ``infer_perf`` fixture's object: rounds scaled by the run's options, pedantic
benchmarks with GC off (and GPU energy read around them), raw samples handed to the run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from infersuite.measure.records import PerfRecord

if TYPE_CHECKING:
    from infersuite.plugin.perf import PerfState

T = TypeVar("T")


class PerfRecorder:
    """The `infer_perf` fixture: scales rounds, runs pedantic benchmarks with GC off and
    keeps each measured round's result, and takes the test's raw samples for the report."""

    def __init__(self, state: PerfState, request: pytest.FixtureRequest) -> None:
        self._state = state
        self._node = request.node
        self._benchmark: Any = None
        self._energy: dict[str, Any] | None = None
        self._probes: list[float] = []

    def rounds(self, default: int) -> int:
        if self._state.rounds is None:
            return default
        from infersuite.plugin.perf import DEFAULT_LATENCY_ROUNDS, MIN_ROUNDS

        return max(MIN_ROUNDS, round(default * self._state.rounds / DEFAULT_LATENCY_ROUNDS))

    def warmup(self, default: int) -> int:
        return default if self._state.warmup is None else self._state.warmup

    def measure(self, benchmark: Any, fn: Callable[[], T], rounds: int,
                warmup_rounds: int, energy: tuple[str, int] | None = None) -> list[T]:
        """`benchmark.pedantic(fn, rounds, iterations=1, warmup_rounds)` with GC disabled;
        returns fn's results from the measured rounds only.

        `energy` = (device, tokens generated per call): the GPU energy of the whole
        pedantic run (every call, warm-up included, does the same work) is read from NVML
        around it, never inside a timed round, and goes into the record; where there is no
        counter the record says why."""
        from infersuite.measure.energy import EnergyMeter
        from infersuite.measure.timing import collect_after_warmup, gc_disabled
        from infersuite.plugin.ab import ab_state

        state = ab_state(self._node.config)
        if state is not None and self._node.nodeid not in state.pairs:
            state.not_ab.setdefault(self._node.name, "times its own calls, not through the "
                                                     "engine, so B cannot run them")
        self._benchmark = benchmark
        if getattr(benchmark, "disabled", False):
            rounds, warmup_rounds = 1, 0
        wrapped, results = collect_after_warmup(fn, warmup_rounds)
        meter = None if energy is None else EnergyMeter(self._state.energy_counter(energy[0]))
        probes: list[float] = []
        probe = self._probe()
        with gc_disabled():
            if meter is not None:
                meter.start()
            benchmark.pedantic(wrapped, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds,
                               setup=None if probe is None else lambda: probes.append(probe()))
            if meter is not None and energy is not None:
                self._energy = meter.stop(energy[1] * (rounds + warmup_rounds))
        # The probe ran (untimed) before every round: keep those of the measured ones.
        self._probes = probes[-len(results):] if results and len(probes) >= len(results) else []
        return results

    def _probe(self) -> Callable[[], float] | None:
        """The reference probe (measure/probe.py) on the case's device, or None for a
        benchmark without a case."""
        callspec = getattr(self._node, "callspec", None)
        params = callspec.params if callspec is not None else {}
        case = params.get("infer_case") or params.get("asr_case")
        device = getattr(case, "device", None)
        return None if device is None else self._state.probe(device)

    def measure_engine(self, benchmark: Any, infer_case: Any, call: Callable[[Any], T],
                       rounds: int, warmup_rounds: int, *, value: Callable[[T], float],
                       metric: str, tokens_per_call: int | None = None) -> list[T]:
        """``call(engine)`` timed on the case's engine, as `measure` does (with the GPU
        energy of `tokens_per_call` generated tokens per call). Under ``--infer-ab SPEC``
        the same call on SPEC's engine for the same case (B) runs in interleaved rounds
        (plugin/ab.py); A's results are returned and recorded as usual, and the pairs of
        ``value(result)`` (the `metric`, in seconds) go to the A/B verdict."""
        from infersuite.measure.timing import gc_disabled

        engine = infer_case.engine
        energy = None if tokens_per_call is None else (infer_case.case.device, tokens_per_call)
        b_engine = self._ab_engine(infer_case, call)
        if b_engine is None:
            return self.measure(benchmark, lambda: call(engine), rounds, warmup_rounds,
                                energy=energy)
        results: list[T] = []

        def interleaved() -> None:
            results.extend(self._interleave(engine, b_engine, call, rounds, warmup_rounds,
                                            value, metric))

        self._benchmark = benchmark
        with gc_disabled():
            benchmark.pedantic(interleaved, rounds=1, iterations=1, warmup_rounds=0)
        return results

    def ab_rounds(self, infer_case: Any, call: Callable[[Any], T], rounds: int,
                  warmup_rounds: int, *, value: Callable[[T], float], metric: str
                  ) -> list[T] | None:
        """For a benchmark that records its own samples (a load run on a server): under
        ``--infer-ab``, interleaved rounds of ``call(engine)`` on A and on B for the A/B
        verdict, A's results returned; None without A/B or where B cannot run it."""
        b_engine = self._ab_engine(infer_case, call)
        if b_engine is None:
            return None
        return self._interleave(infer_case.engine, b_engine, call, rounds, warmup_rounds,
                                value, metric)

    def _ab_engine(self, infer_case: Any, call: Callable[[Any], Any]) -> Any:
        """B's engine under --infer-ab, once an unmeasured first call showed it runs this
        benchmark; None without A/B or where B cannot (the reason kept for the report)."""
        from infersuite.plugin.ab import ab_state

        state = ab_state(self._node.config)
        b_engine = None if state is None else self._b_engine(infer_case, state)
        if state is None or b_engine is None:
            return None
        try:  # B may not run this benchmark (the knee's sweep drives transformers'
            call(b_engine)  # generate(), which onnxruntime lacks)
        except pytest.skip.Exception as exc:
            state.not_ab[self._node.name] = str(exc.msg)
            return None
        return b_engine

    def _interleave(self, engine: Any, b_engine: Any, call: Callable[[Any], T], rounds: int,
                    warmup_rounds: int, value: Callable[[T], float], metric: str) -> list[T]:
        import zlib

        from infersuite.plugin.ab import AbPairs, ab_state, run_interleaved

        state = ab_state(self._node.config)
        assert state is not None
        pairs = AbPairs(self._node.name, self._node.nodeid, metric, str(state.spec))
        state.pairs[self._node.nodeid] = pairs
        return run_interleaved(state, pairs, lambda: call(engine), lambda: call(b_engine),
                               value, rounds, warmup_rounds,
                               seed=zlib.crc32(self._node.nodeid.encode()))

    def _b_engine(self, infer_case: Any, state: Any) -> Any:
        """B's engine for this case, or None (and the reason kept) where it cannot run it:
        a B that cannot run the case (EngineUnsupported), a server against an in-process
        engine or the other way round, and a ``same:k=v`` whose argument this case's
        engine does not take. A named B that fails to build fails the benchmark."""
        from dataclasses import replace

        from infersuite.engines.base import SERVING_ENGINES
        from infersuite.plugin.ab import SAME, resolve_b_spec
        from infersuite.plugin.engines import build_case_engine

        try:
            if hasattr(infer_case, "engine_for"):  # a speech case (plugin/asr.py)
                return infer_case.engine_for(resolve_b_spec(state.spec,
                                                            infer_case.spec.engine))
            case = infer_case.case
            b_spec = resolve_b_spec(state.spec, case.engine)
            kinds = ["a server" if s.name in SERVING_ENGINES else "an in-process engine"
                     for s in (b_spec, case.engine)]
            if kinds[0] != kinds[1]:
                state.not_ab[self._node.name] = (
                    f"B ({b_spec}) is {kinds[0]} and A ({case.engine}) is {kinds[1]}: load "
                    "levels need servers, the other benchmarks in-process engines")
                return None
            return build_case_engine(self._node.config, replace(case, engine=b_spec))
        except pytest.skip.Exception as exc:  # EngineUnsupported: B cannot run this case
            state.not_ab[self._node.name] = str(exc.msg)
            return None
        except pytest.fail.Exception as exc:
            if state.spec.name != SAME:
                raise
            state.not_ab[self._node.name] = f"{state.spec} on this case: {exc.msg}"
            return None

    def record(self, metrics: Mapping[str, Sequence[float]], primary: str,
               group: str | None = None, extra: Mapping[str, Any] | None = None) -> PerfRecord:
        """Hand over raw samples (seconds); `primary` is the metric the gate compares."""
        if primary not in metrics:
            raise ValueError(f"primary metric {primary!r} is not among {sorted(metrics)}")
        extra = {**(extra or {}), **({"energy": self._energy} if self._energy else {})}
        samples = {k: [float(v) for v in vals] for k, vals in metrics.items()}
        if len(self._probes) == len(samples[primary]):  # one probe per primary sample
            samples["probe_s"] = list(self._probes)
        record = PerfRecord(name=self._node.name, fullname=self._node.nodeid, primary=primary,
                            metrics=samples, group=group, extra=extra)
        self._state.records[record.fullname] = record
        if self._benchmark is not None:
            self._benchmark.extra_info.update(
                {k: v for k, v in record.extra.items() if isinstance(v, (int, float, str))})
            self._benchmark.extra_info["infersuite_primary"] = primary
        return record

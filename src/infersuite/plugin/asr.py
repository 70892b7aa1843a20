"""Speech cases: the `asr_case` fixture, over speech model x engine.

A test that asks for ``asr_case`` runs once per speech model (``--infer-asr-model``,
repeatable; default: the speech zoo's tiny tier, ``whisper-toy``) and per in-process engine
of ``--infer-engine`` (default ``hf``), in float32 on the CPU. ``asr_case.engine`` is the
engine under test (engines/asr.py, built once per session), ``asr_case.reference`` is
transformers float32, the judge, and ``asr_case.require("cached_decoder")`` skips, naming
the engine and what it lacks. An engine with no speech adapter yet skips its cases, saying
which engines have one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from infersuite.engines.base import SERVING_ENGINES, EngineSpec
from infersuite.plugin.options import get_settings

asr_cache_key = pytest.StashKey[dict[tuple[str, str], Any]]()
wer_rows_key = pytest.StashKey[list[dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infersuite")
    group.addoption("--infer-asr-model", action="append", metavar="NAME",
                    help="speech model of the speech zoo for the speech (asr) checks, "
                         "repeatable (default: its tiny tier)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[asr_cache_key] = {}
    config.stash[wer_rows_key] = []
    names = config.getoption("infer_asr_model", None)
    if names and not config.option.help:
        from infersuite.models.whisper import list_asr_models

        # the trained model's window is 4 s, not the 30 s the synthetic-clip checks and
        # timings use: it has its own module (test_asr_wer), whatever this option says
        usable = [e.name for e in list_asr_models() if e.tier != "trained"]
        unknown = [n for n in names if n not in usable]
        if unknown:
            raise pytest.UsageError(f"--infer-asr-model {', '.join(unknown)}: not a speech "
                                    f"model of the checks and timings; expected one of "
                                    f"{', '.join(usable)} (speech-digits, the trained one, "
                                    "is judged by its word error rate in test_asr_wer)")


def pytest_unconfigure(config: pytest.Config) -> None:
    config.stash.get(asr_cache_key, {}).clear()


@dataclass(frozen=True)
class AsrCaseSpec:
    model: str
    engine: EngineSpec
    device: str = "cpu"

    @property
    def id(self) -> str:
        return f"{self.model}-float32-cpu-{self.engine.id}"


def asr_case_specs(config: pytest.Config, marker: pytest.Mark | None = None
                   ) -> list[AsrCaseSpec]:
    """Speech model x in-process engine. A module's ``infer_asr_cases(models=..., engines=...)``
    marker fixes its models (the WER check's trained model) and adds engine specs to
    --infer-engine's (its engine x precision table)."""
    from infersuite.engines.base import parse_engine_spec
    from infersuite.models.whisper import list_asr_models

    kwargs = marker.kwargs if marker is not None else {}
    models = kwargs.get("models") or config.getoption("infer_asr_model", None) or [
        entry.name for entry in list_asr_models() if entry.tier == "tiny"]
    engines = [e for e in get_settings(config).engines if e.name not in SERVING_ENGINES]
    engines += [s for s in map(parse_engine_spec, kwargs.get("engines", ())) if s not in engines]
    return [AsrCaseSpec(model, engine) for model in models for engine in engines]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "asr_case" not in metafunc.fixturenames:
        return
    specs = asr_case_specs(metafunc.config, metafunc.definition.get_closest_marker(
        "infer_asr_cases"))
    metafunc.parametrize("asr_case", [pytest.param(s, id=s.id) for s in specs], indirect=True)


class AsrCase:
    """One speech model on one engine, with the reference that judges it."""

    def __init__(self, config: pytest.Config, spec: AsrCaseSpec) -> None:
        self.config, self.spec = config, spec

    def _cached(self, key: tuple[str, str], build: Any) -> Any:
        """Built once per session; a build that failed fails every case the same way,
        without building again."""
        cache = self.config.stash[asr_cache_key]
        if key not in cache:
            try:
                cache[key] = build()
            except Exception as exc:
                cache[key] = exc
        if isinstance(cache[key], Exception):
            raise cache[key]
        return cache[key]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def model(self) -> Any:
        from infersuite.models.whisper import build_whisper, get_asr_entry

        return self._cached((self.spec.model, "model"),
                            lambda: build_whisper(get_asr_entry(self.spec.model)))

    @property
    def engine(self) -> Any:
        return self.engine_for(self.spec.engine)

    def engine_for(self, spec: EngineSpec) -> Any:
        """`spec`'s speech engine on this case's model (A/B builds B with it)."""
        from infersuite.engines.asr import ASR_ENGINES
        from infersuite.engines.base import EngineUnsupported

        factory = ASR_ENGINES.get(spec.name)
        plant = self.config.getoption("infer_plant_slowdown", 0.0)
        if plant and spec.name == "hf" and "slowdown" not in spec.kwargs:
            # --infer-plant-slowdown, as the text cases get it (plugin/engines.py)
            spec = EngineSpec(spec.name, (*spec.args, ("slowdown", f"{plant:g}")))
        if factory is None:
            pytest.skip(f"engine {spec}: no speech-model adapter yet (speech models run on: "
                        f"{', '.join(ASR_ENGINES)})")
        try:
            return self._cached((self.spec.model, str(spec)),
                                lambda: factory(spec, self.model))
        except EngineUnsupported as exc:
            pytest.skip(str(exc))

    @property
    def reference(self) -> Any:
        from infersuite.engines.asr import create_hf

        return self._cached((self.spec.model, "hf"), lambda: create_hf(EngineSpec("hf"),
                                                                        self.model))

    @property
    def is_reference(self) -> bool:
        return self.spec.engine.name == "hf" and not self.spec.engine.kwargs

    @property
    def tolerance(self) -> Any:
        from infersuite.conformance.tolerances import resolve_tolerance

        return resolve_tolerance(self.engine.compute_dtype, get_settings(self.config).tolerances)

    @property
    def context(self) -> dict[str, str]:
        return {"model": self.spec.model, "dtype": "float32", "device": "cpu",
                "engine": str(self.spec.engine)}

    def require(self, *capabilities: str) -> None:
        engine = self.engine
        for capability in capabilities:
            if capability not in engine.capabilities:
                why = engine.limitations.get(capability, "not implemented")
                pytest.skip(f"engine {self.spec.engine} lacks {capability}: {why}")

    def features(self, seconds: tuple[float, ...], seed: int = 0) -> Any:
        """Log-mel features [len(seconds), mels, 3000] of synthetic clips of those lengths."""
        import torch

        from infersuite.models.whisper import synth_clip_features

        return torch.from_numpy(synth_clip_features(self.model.config.num_mel_bins,
                                                    seconds, seed))


@pytest.fixture
def asr_case(request: pytest.FixtureRequest) -> AsrCase:
    return AsrCase(request.config, request.param)


@pytest.fixture
def asr_wer(request: pytest.FixtureRequest) -> Any:
    """Adds a row to the speech WER table (terminal summary, wer.json in the report)."""
    rows = request.config.stash[wer_rows_key]

    def add(case: AsrCase, engine: Any, result: Any, reference: Any) -> None:
        rows.append({"case": case.id, "engine": str(case.spec.engine),
                     "precision": engine.precision, "wer": result.wer,
                     "errors": result.errors, "words": result.words,
                     "rise_points": 100 * (result.wer - reference.wer),
                     "changed": sum(a != b for a, b in zip(result.transcripts,
                                                           reference.transcripts,
                                                           strict=True)),
                     "clips": len(result.transcripts), "transcripts": result.transcripts})

    return add


def export_state(config: pytest.Config) -> list[dict[str, Any]]:
    """A worker's WER rows, for the controller (plugin/workers.py)."""
    rows: list[dict[str, Any]] = config.stash.get(wer_rows_key, [])
    return list(rows)


def merge_state(config: pytest.Config, data: list[dict[str, Any]]) -> None:
    config.stash.setdefault(wer_rows_key, []).extend(data)


def pytest_sessionfinish(session: pytest.Session) -> None:
    from infersuite.plugin.options import is_xdist_worker

    rows = session.config.stash.get(wer_rows_key, [])
    if not rows or is_xdist_worker(session.config):
        return
    import json

    from infersuite.atomic import write_text_atomic

    path = get_settings(session.config).report_dir / "wer.json"
    write_text_atomic(path, json.dumps({"schema": "infersuite.wer/1", "rows": rows},
                                       indent=1) + "\n")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash.get(wer_rows_key, [])
    if not rows:
        return
    from tabulate import tabulate

    terminalreporter.section("infersuite speech WER")
    table = [(r["case"], r["precision"], f"{r['wer']:.2%} ({r['errors']}/{r['words']})",
              f"{r['rise_points']:+.2f}", f"{r['changed']}/{r['clips']}") for r in rows]
    terminalreporter.write_line(tabulate(table, headers=(
        "case", "precision", "WER (errors/words)", "vs float32 (points)",
        "transcripts changed"), tablefmt="simple", disable_numparse=True))
    terminalreporter.write_line(
        f"speech WER report: {get_settings(config).report_dir / 'wer.json'}")

"""Engines in a pytest run: built once per case, cached, closed at the end; the reference.

An engine that cannot run a case (``EngineUnsupported``: a dtype or device it does not
support) skips that case with the engine's reason; one that fails to build fails it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from infersuite.engines.base import EngineError, EngineSpec, EngineUnsupported
from infersuite.plugin.options import Case, get_settings, parse_fraction

engine_cache_key = pytest.StashKey[dict[Case, Any]]()
workdir_key = pytest.StashKey[Path]()
REFERENCE = EngineSpec("hf")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("infersuite").addoption(
        "--infer-plant-slowdown", type=parse_fraction, default=0.0, metavar="FRACTION",
        help="prove a gate on this host: the hf engine spins FRACTION (<= 3) of each step's "
             "time after it, case ids unchanged so a baseline still matches (not with "
             "--infer-save-baseline or --infer-ab)")


def pytest_configure(config: pytest.Config) -> None:
    plant = config.getoption("infer_plant_slowdown", 0.0)
    if not plant:
        return
    from infersuite.engines.base import MAX_SLOWDOWN

    if plant > MAX_SLOWDOWN:
        raise pytest.UsageError(f"--infer-plant-slowdown {plant:g}: use a fraction up to "
                                f"{MAX_SLOWDOWN:g} (1 = twice as slow)")
    if config.getoption("infer_save_baseline", None) or config.getoption("infer_ab", None):
        raise pytest.UsageError(
            "--infer-plant-slowdown slows the measured engine on purpose: it cannot be saved "
            "into a baseline (--infer-save-baseline), and under --infer-ab plant in B instead "
            "(--infer-ab same:slowdown=F)")


def _workdir(config: pytest.Config, case: Case) -> Path:
    if workdir_key not in config.stash:
        config.stash[workdir_key] = Path(tempfile.mkdtemp(prefix="infersuite-engines-"))
    # a case id may hold a path (env:python=/opt/...): one folder per case all the same
    path = config.stash[workdir_key] / re.sub(r"[^\w.=+-]", "_", case.id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _build(config: pytest.Config, case: Case) -> Any:
    from infersuite.engines.base import (
        SERVING_ENGINES,
        EngineContext,
        load_factory,
        parse_slowdown,
    )
    from infersuite.plugin.cases import load_case_model

    spec = case.engine
    if spec.name in SERVING_ENGINES and "slowdown" in spec.kwargs:
        # a server with a planted slowdown: the same server as without it, read by a
        # client that stretches its times (engines/openai_engine.py)
        slowdown = parse_slowdown(spec)
        plain = EngineSpec(spec.name, tuple((k, v) for k, v in spec.args if k != "slowdown"))
        return build_case_engine(config, replace(case, engine=plain)).with_planted_slowdown(
            spec, slowdown)
    loaded = load_case_model(config, case)
    plant = config.getoption("infer_plant_slowdown", 0.0)
    if plant and spec.name == "hf" and "slowdown" not in spec.kwargs:
        # --infer-plant-slowdown: the engine is slowed, the case id (and so a baseline's
        # key) is not; the report's settings say it was planted.
        spec = EngineSpec(spec.name, (*spec.args, ("slowdown", f"{plant:g}")))
    fp32_cpu = Case(case.model, case.model_id, "float32", "cpu", REFERENCE)
    context = EngineContext(
        spec=spec, model=loaded.model, tokenizer=loaded.tokenizer,
        model_name=case.model, dtype=case.dtype, device=case.device,
        workdir=_workdir(config, case),
        reference_fp32=lambda: load_case_model(config, fp32_cpu).model,
        options={"endpoint": get_settings(config).endpoint,
                 "models_named": bool(get_settings(config).models),
                 "allow_pickle": get_settings(config).allow_pickle,
                 "cpu_threads": config.getoption("infer_cpu_threads", 0)})
    return load_factory(spec.name)(context)


def build_case_engine(config: pytest.Config, case: Case) -> Any:
    """The case's engine, built on first use; a build error is kept and re-raised."""
    cache = config.stash.setdefault(engine_cache_key, {})
    if case not in cache:
        try:
            cache[case] = _build(config, case)
        except EngineError as exc:  # EngineUnsupported included: a skip, below
            cache[case] = exc
        except Exception as exc:  # a bug in an adapter: fail its cases once, say where
            cache[case] = EngineError(
                f"engine {case.engine} failed to build for {case.id}: "
                f"{type(exc).__name__}: {exc}")
    built = cache[case]
    if isinstance(built, EngineUnsupported):
        pytest.skip(str(built))
    if isinstance(built, EngineError):
        pytest.fail(f"EngineError: {built}", pytrace=False)
    return built


def build_reference_engine(config: pytest.Config, case: Case) -> Any:
    """transformers float32 on the CPU for the case's model."""
    return build_case_engine(config, Case(case.model, case.model_id, "float32", "cpu",
                                          REFERENCE))


def pytest_unconfigure(config: pytest.Config) -> None:
    for built in config.stash.get(engine_cache_key, {}).values():
        if not isinstance(built, Exception):
            try:
                built.close()
            except Exception as exc:  # one engine's failing close must not skip the rest
                config.get_terminal_writer().line(f"infersuite: closing {built.spec}: {exc}")
    config.stash.get(engine_cache_key, {}).clear()
    workdir = config.stash.get(workdir_key, None)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)

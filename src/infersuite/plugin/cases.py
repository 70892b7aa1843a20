"""Which cases a test runs, and the fixtures that hand it a model, a tokenizer, the settings.

Every suite module gets its cases from one place: a test that asks for the `infer_case`
fixture is parametrized over model x dtype x device from --infer-model/--infer-dtype/
--infer-device. A module (or a test) narrows or replaces that set with a marker:

    pytestmark = pytest.mark.infer_cases(first_per_device=True)

- ``models=("adder",)``: these models, whatever --infer-model says (a test of one model);
- ``dtypes={"cpu": (...), "cuda": (...)}``: the module's dtypes when --infer-dtype is not given;
- ``first_per_device=True``: only the first model at the first dtype on each device;
- ``gpu_default=("gemma3-270m-shape", "bfloat16")``: the CUDA case when the user named
  neither models nor dtypes;
- ``load=False``: the fixture does not load the model (the test loads its own);
- ``engines=("hf",)``: these engines, whatever --infer-engine says (modules about the
  transformers model itself, such as format round trips);
- ``serving=True``: the serving engines (servers behind the OpenAI-compatible API; see
  ``serving_cases``) instead of the in-process ones.

``infer_case.engine`` is the engine under test (built on first use, once per session);
``infer_case.require("cache")`` skips, naming the engine and the capability, when the
engine lacks one; ``infer_case.reference`` is transformers float32 on the CPU, the judge.

CUDA cases carry the ``gpu`` marker and skip with the reason where no device is visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from infersuite.engines.base import SERVING_ENGINES, EngineSpec
from infersuite.plugin.engines import build_case_engine, build_reference_engine
from infersuite.plugin.options import Case, Settings, get_settings, probe_cuda

NO_CUDA_REASON = ("no CUDA device is visible (torch.cuda.is_available() is False); "
                  "run on a GPU host or use -m 'not gpu'")

model_cache_key = pytest.StashKey[dict[tuple[str, str, str], Any]]()


@dataclass(frozen=True)
class CaseSelection:
    """The arguments of the ``infer_cases`` marker."""

    models: tuple[str, ...] | None = None
    dtypes: dict[str, tuple[str, ...]] | None = None
    first_per_device: bool = False
    gpu_default: tuple[str, str] | None = None
    load: bool = True
    engines: tuple[str, ...] | None = None
    serving: bool = False


def select_cases(settings: Settings, selection: CaseSelection) -> list[Case]:
    """The cases one test runs: the settings' cases, narrowed by the module's selection."""
    from infersuite.models.loader import describe_model

    if selection.serving:
        return serving_cases(settings, selection)
    engines = (tuple(EngineSpec(name) for name in selection.engines) if selection.engines
               else tuple(e for e in settings.engines if e.name not in SERVING_ENGINES))
    cases = []
    for device in settings.devices():
        kind = "cuda" if device.startswith("cuda") else "cpu"
        if kind == "cuda" and selection.gpu_default and not (settings.models or settings.dtypes):
            model, dtype = selection.gpu_default
            cases += [Case(model, describe_model(model), dtype, device, engine)
                      for engine in engines]
            continue
        models = selection.models or settings.models_for(device)
        dtypes = settings.dtypes or (selection.dtypes or {}).get(kind) \
            or settings.dtypes_for(device)
        if selection.first_per_device:
            models, dtypes = models[:1], dtypes[:1]
        cases += [Case(model, describe_model(model), dtype, device, engine)
                  for model in models for dtype in dtypes for engine in engines]
    return cases


def serving_cases(settings: Settings, selection: CaseSelection) -> list[Case]:
    """The endpoint modules' cases: each serving engine (see Settings.serving_engines) on
    the named models, or the first default one. A server holds its own precision (its
    engine arguments), so the case is float32 on the CPU: the reference's own case."""
    from infersuite.models.loader import describe_model
    from infersuite.models.zoo import default_model_names

    models = selection.models or settings.models or tuple(default_model_names()[:1])
    return [Case(model, describe_model(model), "float32", "cpu", engine)
            for model in models for engine in settings.serving_engines()]


def case_param(config: pytest.Config, case: Case) -> Any:
    """A case as a pytest param: CUDA cases are marked gpu and skip without CUDA."""
    marks: list[Any] = []
    if case.is_gpu:
        marks.append(pytest.mark.gpu)
        if not probe_cuda(config)[0]:
            marks.append(pytest.mark.skip(reason=NO_CUDA_REASON))
    return pytest.param(case, id=case.id, marks=marks)


def read_selection(node: pytest.Item) -> CaseSelection:
    """The ``infer_cases`` marker closest to a test, as a CaseSelection."""
    marker = node.get_closest_marker("infer_cases")
    if marker is None:
        return CaseSelection()
    if marker.args:
        raise pytest.UsageError(f"{node.nodeid}: infer_cases takes keyword arguments only "
                                "(models=, dtypes=, first_per_device=, gpu_default=, load=, "
                                "engines=, serving=)")
    try:
        return CaseSelection(**marker.kwargs)
    except TypeError as exc:
        raise pytest.UsageError(f"{node.nodeid}: infer_cases: {exc}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = get_settings(metafunc.config)
    if "infer_case" in metafunc.fixturenames:
        cases = select_cases(settings, read_selection(metafunc.definition))
        metafunc.parametrize("infer_case", [case_param(metafunc.config, c) for c in cases],
                             indirect=True)
    if "infer_tokenizer" in metafunc.fixturenames:
        from infersuite.models.loader import describe_model

        models = list(dict.fromkeys(settings.models_for("cpu")))
        metafunc.parametrize("infer_tokenizer", models, indirect=True,
                             ids=[describe_model(m) for m in models])


def pytest_configure(config: pytest.Config) -> None:
    config.stash[model_cache_key] = {}


def pytest_unconfigure(config: pytest.Config) -> None:
    cache = config.stash.get(model_cache_key, None)
    if cache is not None:
        cache.clear()


def load_case_model(config: pytest.Config, case: Case) -> Any:
    """Load (once per session) the model a case names."""
    import torch

    from infersuite.models.loader import ModelLoadError, load_model

    cache = config.stash[model_cache_key]
    key = (case.model, case.dtype, case.device)
    if key not in cache:
        try:
            cache[key] = load_model(case.model, getattr(torch, case.dtype), case.device,
                                    get_settings(config).allow_pickle)
        except ModelLoadError as exc:
            pytest.fail(f"ModelLoadError: {exc}", pytrace=False)
    return cache[key]


@dataclass
class InferCase:
    """What a parametrized test gets: the case, its model (loaded on first use), and how
    to judge it."""

    case: Case
    settings: Settings
    config: pytest.Config = field(repr=False)

    @property
    def id(self) -> str:
        return self.case.id

    @property
    def context(self) -> dict[str, str]:
        return {"model": self.case.model_id, "dtype": self.case.dtype, "device": self.case.device}

    @property
    def model(self) -> Any:
        return load_case_model(self.config, self.case).model

    @property
    def tokenizer(self) -> Any | None:
        return load_case_model(self.config, self.case).tokenizer

    @property
    def engine(self) -> Any:
        """The engine under test for this case (built once per session)."""
        return build_case_engine(self.config, self.case)

    @property
    def reference(self) -> Any:
        """transformers float32 on the CPU, same weights: the judge of every engine."""
        return build_reference_engine(self.config, self.case)

    def require(self, *capabilities: str) -> None:
        """Skip, naming the engine and what it lacks, unless it has every capability."""
        from infersuite.engines.base import CAPABILITIES

        engine = self.engine
        missing = [c for c in capabilities if c not in engine.capabilities]
        if missing:
            pytest.skip(f"engine {self.case.engine} lacks " + "; ".join(
                f"{c} ({CAPABILITIES.get(c, c)})"
                + (f": {engine.limitations[c]}" if c in engine.limitations else "")
                for c in missing))

    @property
    def tolerance(self) -> Any:
        """The logits tolerance of the dtype the engine computes in (the case dtype for
        transformers; float16 for llama.cpp with an f16 KV cache, say)."""
        from infersuite.conformance.tolerances import resolve_tolerance

        return resolve_tolerance(self.engine.compute_dtype, self.settings.tolerances)

    def prompt_ids(self) -> list[list[int]]:
        """The shipped prompts as token ids (random ids of the same lengths when the
        checkpoint has no tokenizer)."""
        from infersuite.conformance.inputs import build_prompt_ids

        return build_prompt_ids(self.tokenizer, self.model.config.vocab_size)


@pytest.fixture
def infer_case(request: pytest.FixtureRequest) -> InferCase:
    """A model at a dtype on a device, from --infer-model/--infer-dtype/--infer-device (or
    the module's ``infer_cases`` marker)."""
    case: Case = request.param
    if read_selection(request.node).load:
        load_case_model(request.config, case)  # a load error is the test's setup error
    return InferCase(case, get_settings(request.config), request.config)


@pytest.fixture
def infer_tokenizer(request: pytest.FixtureRequest) -> Any:
    """The tokenizer of a model under test, set up as the suite's pipeline uses it."""
    from infersuite.models.loader import find_tokenizer_dir, load_tokenizer

    tokenizer_dir = find_tokenizer_dir(request.param)
    if tokenizer_dir is None:
        pytest.skip(f"{request.param}: no tokenizer files (tokenizer.json or "
                    "tokenizer_config.json) to test")
    return load_tokenizer(tokenizer_dir)


@pytest.fixture(scope="session")
def infer_settings(pytestconfig: pytest.Config) -> Settings:
    return get_settings(pytestconfig)

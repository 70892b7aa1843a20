"""pytest11 entry point: --infer-* options, markers, parametrization and fixtures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infersuite.options import Case, OptionError, Settings, parse_settings

# Feature plugins wired by this entry point; each owns its options and hooks.
pytest_plugins: list[str] = [
    "infersuite.pytest_perf", "infersuite.pytest_formats", "infersuite.pytest_knee",
]

MARKERS = {
    "conformance": "checks that the inference pipeline computes the right thing",
    "perf": "latency and throughput benchmarks (pytest-benchmark)",
    "gpu": "needs a CUDA device; skipped with a reason where none is visible",
    "slow": "takes longer than the default CPU budget; deselect with -m 'not slow'",
}

settings_key = pytest.StashKey[Settings]()
model_cache_key = pytest.StashKey[dict[tuple[str, str, str], Any]]()


@dataclass
class InferCase:
    """What a parametrized test gets: the loaded model and how to judge it."""

    case: Case
    settings: Settings
    _loaded: Any = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.case.id

    @property
    def context(self) -> dict[str, str]:
        return {"model": self.case.model_id, "dtype": self.case.dtype, "device": self.case.device}

    @property
    def model(self) -> Any:
        return self._loaded.model

    @property
    def tokenizer(self) -> Any | None:
        return self._loaded.tokenizer

    @property
    def tolerance(self) -> Any:
        from infersuite.conformance.tolerances import resolve_tolerance

        return resolve_tolerance(self.case.dtype, self.settings.tolerances)

    def prompt_ids(self) -> list[list[int]]:
        """The shipped prompts as token ids (random ids of the same lengths when the
        checkpoint has no tokenizer)."""
        from infersuite.conformance.inputs import build_prompt_ids

        return build_prompt_ids(self.tokenizer, self.model.config.vocab_size)


def _add_model_options(group: pytest.OptionGroup) -> None:
    group.addoption("--infer-model", action="append", metavar="NAME_OR_PATH",
                    help="zoo model name or local Hugging Face checkpoint directory "
                         "(repeatable; default: the zoo's tiny models)")
    group.addoption("--infer-allow-pickle", action="store_true", default=False,
                    help="allow pickle (.bin/.pt) checkpoints; they can run code when loaded")


def _add_runtime_options(group: pytest.OptionGroup) -> None:
    group.addoption("--infer-device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                    help="device to run on (default auto: CPU, plus CUDA when visible)")
    group.addoption("--infer-dtype", action="append", metavar="DTYPE",
                    help="float32|float16|bfloat16 (repeatable; default float32 on CPU, "
                         "float32+bfloat16+float16 on CUDA)")
    group.addoption("--infer-tolerance", action="append", metavar="DTYPE=ATOL",
                    help="override the logits tolerance (atol=rtol) for a dtype")


def _add_report_options(group: pytest.OptionGroup) -> None:
    group.addoption("--infer-report-dir", metavar="DIR",
                    help="where reports are written (default reports/<UTC timestamp>/)")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infersuite", "infersuite: inference conformance and benchmarks")
    _add_model_options(group)
    _add_runtime_options(group)
    _add_report_options(group)


def _cuda_status() -> tuple[bool, int]:
    import torch

    available = torch.cuda.is_available()
    return available, torch.cuda.device_count() if available else 0


def _validate_models(settings: Settings) -> None:
    from infersuite.models.loader import ModelLoadError, check_checkpoint_dir, is_checkpoint_path
    from infersuite.models.zoo import UnknownModelError, get_entry

    for spec in settings.models:
        try:
            if is_checkpoint_path(spec):
                check_checkpoint_dir(Path(spec).expanduser(), settings.allow_pickle)
            else:
                get_entry(spec)
        except (UnknownModelError, ModelLoadError) as exc:
            raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Parse the settings before any feature plugin's configure reads them."""
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    if config.option.help or config.option.markers:
        return
    cuda_available, cuda_count = _cuda_status()
    try:
        settings = parse_settings(
            models=config.getoption("infer_model"),
            device=config.getoption("infer_device"),
            dtypes=config.getoption("infer_dtype"),
            report_dir=config.getoption("infer_report_dir"),
            tolerances=config.getoption("infer_tolerance"),
            allow_pickle=config.getoption("infer_allow_pickle"),
            root=config.rootpath,
            cuda_available=cuda_available,
            cuda_count=cuda_count,
        )
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    _validate_models(settings)
    config.stash[settings_key] = settings
    config.stash[model_cache_key] = {}


def pytest_unconfigure(config: pytest.Config) -> None:
    cache = config.stash.get(model_cache_key, None)
    if cache is not None:
        cache.clear()


def get_settings(config: pytest.Config) -> Settings:
    return config.stash[settings_key]


def case_param(case: Case, cuda_available: bool) -> Any:
    """A case as a pytest param: CUDA cases are marked gpu and skip without CUDA."""
    marks: list[Any] = []
    if case.is_gpu:
        marks.append(pytest.mark.gpu)
        if not cuda_available:
            marks.append(pytest.mark.skip(
                reason="no CUDA device is visible (torch.cuda.is_available() is False); "
                       "run on a GPU host or use -m 'not gpu'"))
    return pytest.param(case, id=case.id, marks=marks)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    settings = get_settings(metafunc.config)
    if "infer_case" in metafunc.fixturenames:
        params = [case_param(c, settings.cuda_available) for c in settings.cases()]
        metafunc.parametrize("infer_case", params, indirect=True)
    if "infer_tokenizer" in metafunc.fixturenames:
        from infersuite.models.loader import describe_model

        models = dict.fromkeys(settings.models_for("cpu"))
        metafunc.parametrize("infer_tokenizer", list(models), indirect=True,
                             ids=[describe_model(m) for m in models])


def load_case_model(config: pytest.Config, case: Case) -> Any:
    """Load (once per session) the model a case names."""
    import torch

    from infersuite.models.loader import ModelLoadError, load_model

    cache = config.stash[model_cache_key]
    key = (case.model, case.dtype, case.device)
    if key not in cache:
        settings = get_settings(config)
        try:
            cache[key] = load_model(case.model, getattr(torch, case.dtype), case.device,
                                    settings.allow_pickle)
        except ModelLoadError as exc:
            pytest.fail(f"ModelLoadError: {exc}", pytrace=False)
    return cache[key]


@pytest.fixture
def infer_case(request: pytest.FixtureRequest) -> InferCase:
    """A model at a dtype on a device, from --infer-model/--infer-dtype/--infer-device."""
    case: Case = request.param
    settings = get_settings(request.config)
    return InferCase(case, settings, load_case_model(request.config, case))


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

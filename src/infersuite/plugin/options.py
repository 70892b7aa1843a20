"""The core --infer-* options, their validation, and the frozen Settings object.

One validation style for every infersuite option: a bad value fails when pytest parses the
command line (an `argparse` type below raises with the value and the fix, pytest exits with
a usage error); a bad combination raises `pytest.UsageError` in `pytest_configure`.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from infersuite.engines.base import EngineSpec, parse_engine_spec

DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_ENGINE = EngineSpec("hf")
DEFAULT_DTYPES = {"cpu": ("float32",), "cuda": ("float32", "bfloat16", "float16")}
DEFAULT_GPU_EXTRA_MODELS = ("gemma3-270m-shape",)
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def parse_positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer; e.g. 64") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: need at least 1")
    return number


def parse_non_negative_int(value: str) -> int:
    return 0 if value.strip() == "0" else parse_positive_int(value)


def _to_float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a number") from None


def parse_positive_float(value: str) -> float:
    number = _to_float(value, "e.g. 2.0")
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r}: must be > 0")
    return number


def parse_fraction(value: str) -> float:
    """A relative change such as 0.05 (5%)."""
    number = _to_float(value, "a relative change, e.g. 0.05 = 5%")
    if not 0.0 <= number < 10.0:
        raise argparse.ArgumentTypeError(f"{value!r}: use a relative change such as 0.05 (5%)")
    return number


def parse_device(value: str) -> str:
    if not _DEVICE_RE.match(value):
        raise argparse.ArgumentTypeError(f"{value!r}: expected auto, cpu, cuda or cuda:N")
    return value


def parse_dtype(value: str) -> str:
    if value not in DTYPES:
        raise argparse.ArgumentTypeError(f"{value!r}: expected one of {', '.join(DTYPES)}")
    return value


def parse_tolerance(value: str) -> tuple[str, float]:
    dtype, sep, number = value.partition("=")
    if not sep or dtype not in DTYPES:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected DTYPE=ATOL with DTYPE one of {', '.join(DTYPES)}, "
            "e.g. --infer-tolerance bfloat16=2e-2")
    atol = _to_float(number, f"{value!r}")
    if not atol > 0:
        raise argparse.ArgumentTypeError(f"{value!r}: the tolerance must be > 0")
    return dtype, atol


def parse_engine(value: str) -> EngineSpec:
    try:
        return parse_engine_spec(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class Case:
    """One parametrization: a model at a dtype on a device, run by an engine."""

    model: str  # zoo name or checkpoint path as given
    model_id: str  # short name for test ids
    dtype: str
    device: str
    engine: EngineSpec = DEFAULT_ENGINE

    @property
    def id(self) -> str:
        return f"{self.model_id}-{self.dtype}-{self.device}-{self.engine.id}"

    @property
    def is_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def is_reference(self) -> bool:
        """transformers float32 on the CPU with no engine arguments: the judge itself."""
        return (self.engine.name, self.engine.args, self.dtype, self.device) == \
            ("hf", (), "float32", "cpu")


@dataclass(frozen=True)
class EndpointOptions:
    """How the suite reaches an OpenAI-compatible server (the serving engines)."""

    url: str | None = None  # --infer-endpoint: a server that is already running
    server_cmd: str | None = None  # --infer-server-cmd: a server the suite starts
    api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key (never logged)
    timeout_s: float = 60.0
    served_model: str | None = None  # the model name to request (default: /v1/models' first)

    @property
    def given(self) -> bool:
        return bool(self.url or self.server_cmd)


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...]  # empty: the zoo's defaults
    device: str  # as requested: auto | cpu | cuda | cuda:N
    dtypes: tuple[str, ...]  # empty: per-device defaults
    report_dir: Path
    tolerances: dict[str, float] = field(default_factory=dict)  # dtype -> atol=rtol override
    allow_pickle: bool = False
    engines: tuple[EngineSpec, ...] = (DEFAULT_ENGINE,)
    endpoint: EndpointOptions = field(default_factory=EndpointOptions)
    engines_named: bool = False  # --infer-engine given (else the default, hf)

    def serving_engines(self) -> tuple[EngineSpec, ...]:
        """The engines the endpoint modules run: the serving engines named with
        --infer-engine, the ``openai`` engine for --infer-endpoint/--infer-server-cmd (unless
        named with arguments, e.g. ``openai:n_ctx=4096``), and llama.cpp's server when no
        engine was named at all."""
        from infersuite.engines.base import SERVING_ENGINES

        named = tuple(e for e in self.engines if e.name in SERVING_ENGINES)
        if self.endpoint.given and not any(e.name == "openai" for e in named):
            named += (EngineSpec("openai"),)
        if not named and not self.engines_named:
            named = (EngineSpec("llama.cpp-server"),)
        return named

    def devices(self) -> tuple[str, ...]:
        """auto: the CPU plus CUDA (whose items skip without a GPU)."""
        return ("cpu", "cuda") if self.device == "auto" else (self.device,)

    def dtypes_for(self, device: str) -> tuple[str, ...]:
        return self.dtypes or DEFAULT_DTYPES["cuda" if device.startswith("cuda") else "cpu"]

    def models_for(self, device: str) -> tuple[str, ...]:
        from infersuite.models.zoo import default_model_names

        if self.models:
            return self.models
        names = tuple(default_model_names())
        return names + DEFAULT_GPU_EXTRA_MODELS if device.startswith("cuda") else names


def default_report_dir(root: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return root / "reports" / stamp


def build_settings(*, models: list[str] | None, device: str, dtypes: list[str] | None,
                   report_dir: str | None, tolerances: list[tuple[str, float]] | None,
                   allow_pickle: bool, root: Path,
                   engines: list[EngineSpec] | None = None,
                   endpoint: EndpointOptions | None = None) -> Settings:
    """Settings from already-parsed option values (duplicates dropped, order kept)."""
    return Settings(
        models=tuple(dict.fromkeys(models or ())),
        device=device,
        dtypes=tuple(dict.fromkeys(dtypes or ())),
        report_dir=Path(report_dir) if report_dir else default_report_dir(root),
        tolerances=dict(tolerances or ()),
        allow_pickle=allow_pickle,
        engines=tuple(dict.fromkeys(engines or ())) or (DEFAULT_ENGINE,),
        endpoint=endpoint or EndpointOptions(),
        engines_named=bool(engines),
    )


def check_device_available(device: str, cuda_available: bool, cuda_count: int) -> None:
    """Raise pytest.UsageError when an explicitly requested CUDA device is not there."""
    if not device.startswith("cuda"):
        return
    if not cuda_available:
        raise pytest.UsageError(
            f"--infer-device {device}: no CUDA device is visible "
            "(torch.cuda.is_available() is False); use --infer-device cpu or run on a GPU host")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= cuda_count:
        raise pytest.UsageError(
            f"--infer-device {device}: only {cuda_count} CUDA device(s) visible; "
            f"use cuda:0..cuda:{cuda_count - 1}")


def _add_model_options(group: pytest.OptionGroup) -> None:
    group.addoption("--infer-model", action="append", metavar="NAME_OR_PATH",
                    help="zoo model name or local Hugging Face checkpoint directory "
                         "(repeatable; default: the zoo's tiny models)")
    group.addoption("--infer-allow-pickle", action="store_true", default=False,
                    help="allow pickle (.bin/.pt) checkpoints; they can run code when loaded")


def _add_runtime_options(group: pytest.OptionGroup) -> None:
    group.addoption("--infer-device", default="auto", type=parse_device,
                    metavar="auto|cpu|cuda|cuda:N",
                    help="device to run on (default auto: CPU, plus CUDA when visible)")
    group.addoption("--infer-dtype", action="append", type=parse_dtype, metavar="DTYPE",
                    help="float32|float16|bfloat16 (repeatable; default float32 on CPU, "
                         "float32+bfloat16+float16 on CUDA)")
    group.addoption("--infer-engine", action="append", type=parse_engine,
                    metavar="NAME[:KEY=VALUE,...]",
                    help="runtime under test (repeatable; default hf): hf, hf-compiled, "
                         "onnxruntime, llama.cpp, the servers llama.cpp-server and vllm "
                         "(endpoint checks), or one registered under the "
                         "infersuite.engines entry points; e.g. llama.cpp:kv=f32. "
                         "transformers float32 on the CPU judges them all")
    group.addoption("--infer-tolerance", action="append", type=parse_tolerance,
                    metavar="DTYPE=ATOL",
                    help="override the logits tolerance (atol=rtol) for a dtype")


def parse_http_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected the server's base URL, e.g. http://127.0.0.1:8000")
    return value


def parse_server_command(value: str) -> str:
    import shlex

    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None
    if not words or not any("{port}" in word for word in words):
        raise argparse.ArgumentTypeError(
            f"{value!r}: the command must contain {{port}} (the suite picks a free port on "
            "127.0.0.1), e.g. \"python -m vllm.entrypoints.openai.api_server --model DIR "
            "--host 127.0.0.1 --port {port}\"")
    return value


def _add_endpoint_options(group: pytest.OptionGroup) -> None:
    group.addoption("--infer-endpoint", type=parse_http_url, metavar="URL",
                    help="test an OpenAI-compatible server that is already running (the "
                         "'openai' engine); pass --infer-model with the served checkpoint to "
                         "judge its answers against transformers float32")
    group.addoption("--infer-server-cmd", type=parse_server_command, metavar="COMMAND",
                    help="start this server for the endpoint checks and stop it at the end; "
                         "{port} and {host} are filled in (127.0.0.1, a free port)")
    group.addoption("--infer-served-model", metavar="NAME",
                    help="model name sent in requests (default: the first of /v1/models)")
    group.addoption("--infer-api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                    help="environment variable holding the server's API key (default "
                         "OPENAI_API_KEY; the key is never written to logs or reports)")
    group.addoption("--infer-endpoint-timeout", type=parse_positive_float, default=60.0,
                    metavar="SECONDS", help="timeout of every HTTP call (default 60)")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infersuite", "infersuite: inference conformance and benchmarks")
    _add_model_options(group)
    _add_runtime_options(group)
    _add_endpoint_options(group)
    group.addoption("--infer-report-dir", metavar="DIR",
                    help="where reports are written (default reports/<UTC timestamp>/)")


settings_key = pytest.StashKey[Settings]()
cuda_key = pytest.StashKey[tuple[bool, int]]()


def probe_cuda(config: pytest.Config) -> tuple[bool, int]:
    """(available, device count), asked of torch once per run and only when needed."""
    if cuda_key not in config.stash:
        import torch

        available = torch.cuda.is_available()
        config.stash[cuda_key] = (available, torch.cuda.device_count() if available else 0)
    return config.stash[cuda_key]


def _check_models(settings: Settings) -> None:
    if not settings.models:
        return
    from infersuite.models.loader import (
        SHIPPED_CHECKPOINTS,
        ModelLoadError,
        check_checkpoint_dir,
        is_checkpoint_path,
    )
    from infersuite.models.zoo import UnknownModelError, get_entry

    for spec in settings.models:
        if spec in SHIPPED_CHECKPOINTS:
            continue
        try:
            if is_checkpoint_path(spec):
                check_checkpoint_dir(Path(spec).expanduser(), settings.allow_pickle)
            else:
                get_entry(spec)
        except (UnknownModelError, ModelLoadError) as exc:
            raise pytest.UsageError(str(exc)) from None


def _check_engines(settings: Settings) -> None:
    from infersuite.engines.base import available_engines, find_missing_requirements

    known = available_engines()
    for spec in settings.engines:
        if spec.name not in known:
            raise pytest.UsageError(
                f"--infer-engine {spec}: unknown engine {spec.name!r}; known engines: "
                f"{', '.join(sorted(known))} (third-party engines register under the "
                "'infersuite.engines' entry-point group)")
        missing = find_missing_requirements(spec.name)
        if missing is not None:  # named on purpose: say so now rather than skip every case
            raise pytest.UsageError(f"--infer-engine {spec}: {missing}")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Build the Settings before any other infersuite module's configure reads them."""
    if config.option.help or config.option.markers:
        return
    settings = build_settings(
        models=config.getoption("infer_model"), device=config.getoption("infer_device"),
        dtypes=config.getoption("infer_dtype"), report_dir=config.getoption("infer_report_dir"),
        tolerances=config.getoption("infer_tolerance"),
        allow_pickle=config.getoption("infer_allow_pickle"), root=config.rootpath,
        engines=config.getoption("infer_engine"),
        endpoint=EndpointOptions(
            url=config.getoption("infer_endpoint"),
            server_cmd=config.getoption("infer_server_cmd"),
            api_key_env=config.getoption("infer_api_key_env"),
            timeout_s=config.getoption("infer_endpoint_timeout"),
            served_model=config.getoption("infer_served_model")))
    if settings.endpoint.url and settings.endpoint.server_cmd:
        raise pytest.UsageError("--infer-endpoint and --infer-server-cmd both given: test a "
                                "running server (--infer-endpoint) or have the suite start one "
                                "(--infer-server-cmd), not both")
    if settings.device.startswith("cuda"):  # asked for by name: check now (imports torch)
        check_device_available(settings.device, *probe_cuda(config))
    _check_models(settings)
    _check_engines(settings)
    config.stash[settings_key] = settings


def get_settings(config: pytest.Config) -> Settings:
    return config.stash[settings_key]


def is_xdist_worker(config: pytest.Config) -> bool:
    """A pytest-xdist worker: it measures, the controller writes."""
    return hasattr(config, "workerinput")


def is_xdist_controller(config: pytest.Config) -> bool:
    """The process that drives pytest-xdist workers (``-n N`` with N > 0)."""
    return not is_xdist_worker(config) and bool(getattr(config.option, "numprocesses", None))

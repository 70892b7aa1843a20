"""Parse and validate the --infer-* options into a frozen Settings object."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

DTYPES = ("float32", "float16", "bfloat16")
DEFAULT_DTYPES = {"cpu": ("float32",), "cuda": ("float32", "bfloat16", "float16")}
DEFAULT_GPU_EXTRA_MODELS = ("gemma3-270m-shape",)
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


class OptionError(ValueError):
    """An option value or combination that cannot work; the message says what to do."""


@dataclass(frozen=True)
class Case:
    """One parametrization: a model at a dtype on a device."""

    model: str  # zoo name or checkpoint path as given
    model_id: str  # short name for test ids
    dtype: str
    device: str

    @property
    def id(self) -> str:
        return f"{self.model_id}-{self.dtype}-{self.device}"

    @property
    def is_gpu(self) -> bool:
        return self.device.startswith("cuda")


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...]  # empty: the zoo's defaults
    device: str  # as requested: auto | cpu | cuda | cuda:N
    dtypes: tuple[str, ...]  # empty: per-device defaults
    report_dir: Path
    tolerances: dict[str, float] = field(default_factory=dict)  # dtype -> atol=rtol override
    allow_pickle: bool = False
    cuda_available: bool = False

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

    def cases(self) -> list[Case]:
        from infersuite.models.loader import describe_model

        return [
            Case(model, describe_model(model), dtype, device)
            for device in self.devices()
            for model in self.models_for(device)
            for dtype in self.dtypes_for(device)
        ]


def parse_device(value: str) -> str:
    if not _DEVICE_RE.match(value):
        raise OptionError(f"--infer-device {value}: expected auto, cpu, cuda or cuda:N")
    return value


def parse_dtype(value: str) -> str:
    if value not in DTYPES:
        raise OptionError(f"--infer-dtype {value}: expected one of {', '.join(DTYPES)}")
    return value


def parse_tolerance(value: str) -> tuple[str, float]:
    dtype, sep, number = value.partition("=")
    if not sep or dtype not in DTYPES:
        raise OptionError(
            f"--infer-tolerance {value}: expected DTYPE=ATOL with DTYPE one of "
            f"{', '.join(DTYPES)}, e.g. --infer-tolerance bfloat16=2e-2"
        )
    try:
        atol = float(number)
    except ValueError:
        raise OptionError(f"--infer-tolerance {value}: {number!r} is not a number") from None
    if not atol > 0:
        raise OptionError(f"--infer-tolerance {value}: the tolerance must be > 0")
    return dtype, atol


def check_device_available(device: str, cuda_available: bool, cuda_count: int) -> None:
    if not device.startswith("cuda"):
        return
    if not cuda_available:
        raise OptionError(
            f"--infer-device {device}: no CUDA device is visible "
            "(torch.cuda.is_available() is False); use --infer-device cpu or run on a GPU host"
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= cuda_count:
        raise OptionError(
            f"--infer-device {device}: only {cuda_count} CUDA device(s) visible; "
            f"use cuda:0..cuda:{cuda_count - 1}"
        )


def default_report_dir(root: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return root / "reports" / stamp


def parse_settings(
    *,
    models: list[str] | None,
    device: str,
    dtypes: list[str] | None,
    report_dir: str | None,
    tolerances: list[str] | None,
    allow_pickle: bool,
    root: Path,
    cuda_available: bool,
    cuda_count: int,
) -> Settings:
    device = parse_device(device)
    check_device_available(device, cuda_available, cuda_count)
    parsed_dtypes = tuple(dict.fromkeys(parse_dtype(d) for d in dtypes or ()))
    return Settings(
        models=tuple(dict.fromkeys(models or ())),
        device=device,
        dtypes=parsed_dtypes,
        report_dir=Path(report_dir) if report_dir else default_report_dir(root),
        tolerances=dict(parse_tolerance(t) for t in tolerances or ()),
        allow_pickle=allow_pickle,
        cuda_available=cuda_available,
    )

"""Load a model by zoo name or local checkpoint path, offline and safetensors-only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.models.zoo import build_zoo_model, get_entry

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class ModelLoadError(RuntimeError):
    """A checkpoint that cannot be loaded; the message says why and what to do."""


@dataclass
class LoadedModel:
    name: str  # zoo name or the checkpoint directory's name
    source: str  # "zoo" or the resolved checkpoint path
    model: PreTrainedModel
    tokenizer: Any | None  # a transformers tokenizer, or None when the checkpoint has none
    dtype: torch.dtype
    device: str


def is_checkpoint_path(spec: str) -> bool:
    return os.sep in spec or spec.startswith(".") or Path(spec).is_dir()


def describe_model(spec: str) -> str:
    """The short name used in test ids."""
    return Path(spec).name if is_checkpoint_path(spec) else spec


def check_checkpoint_dir(path: Path, allow_pickle: bool = False) -> None:
    """Refuse a directory that cannot be loaded safely, naming the problem."""
    if not path.exists():
        raise ModelLoadError(f"--infer-model {path}: no such directory")
    if not path.is_dir():
        raise ModelLoadError(
            f"--infer-model {path}: is a file; pass the checkpoint's directory "
            "(with config.json and *.safetensors)"
        )
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"--infer-model {path}: no config.json in the directory")
    safetensors = sorted(path.glob("*.safetensors"))
    pickles = sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not safetensors and pickles and not allow_pickle:
        raise ModelLoadError(
            f"--infer-model {path}: only pickle weights ({', '.join(p.name for p in pickles)}); "
            "pickle can run arbitrary code when loaded, so it is refused. Convert the "
            "checkpoint to safetensors, or pass --infer-allow-pickle if you trust its source"
        )
    if not safetensors and not pickles:
        raise ModelLoadError(f"--infer-model {path}: no *.safetensors weights in the directory")


def load_checkpoint(
    path: Path, dtype: torch.dtype, device: str, allow_pickle: bool = False
) -> tuple[PreTrainedModel, Any | None]:
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    check_checkpoint_dir(path, allow_pickle)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, local_files_only=True, use_safetensors=not allow_pickle
        )
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        files = ", ".join(p.name for p in sorted(path.glob("*.safetensors"))) or "no weights"
        raise ModelLoadError(
            f"--infer-model {path}: loading failed ({files}): {type(exc).__name__}: {exc}. "
            "Check that no file is truncated and that config.json matches the weights"
        ) from exc
    tokenizer_dir = find_tokenizer_dir(str(path))
    tokenizer = load_tokenizer(tokenizer_dir) if tokenizer_dir else None
    model.to(device)  # type: ignore[arg-type]
    return model.eval(), tokenizer


def find_tokenizer_dir(spec: str) -> Path | None:
    """The directory holding the tokenizer of a zoo name or checkpoint path, if any."""
    if not is_checkpoint_path(spec):
        return get_entry(spec).tokenizer_dir
    path = Path(spec).expanduser().resolve()
    names = ("tokenizer.json", "tokenizer_config.json")
    return path if any((path / name).is_file() for name in names) else None


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"
    return tokenizer


# Trained models shipped in the package data, loaded by name like zoo models.
SHIPPED_CHECKPOINTS = ("adder",)


def load_model(
    spec: str, dtype: torch.dtype, device: str, allow_pickle: bool = False
) -> LoadedModel:
    if spec in SHIPPED_CHECKPOINTS:
        from infersuite.fixtures_path import fixtures_dir

        path = fixtures_dir() / spec
        model, tokenizer = load_checkpoint(path, dtype, device)
        return LoadedModel(spec, str(path), model, tokenizer, dtype, device)
    if is_checkpoint_path(spec):
        path = Path(spec).expanduser().resolve()
        model, tokenizer = load_checkpoint(path, dtype, device, allow_pickle)
        return LoadedModel(path.name, str(path), model, tokenizer, dtype, device)
    entry = get_entry(spec)
    model = build_zoo_model(entry, dtype, device)
    tokenizer = load_tokenizer(entry.tokenizer_dir) if entry.tokenizer_dir else None
    return LoadedModel(entry.name, "zoo", model, tokenizer, dtype, device)

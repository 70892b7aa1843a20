"""The offline model zoo: deterministic random models built from shipped configs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from infersuite.fixtures_path import fixtures_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel


class UnknownModelError(ValueError):
    """A model name that is neither in the zoo nor an existing directory."""


@dataclass(frozen=True)
class ZooEntry:
    name: str
    # "tiny": runs on CPU by default; "shape": a real model's shape, for GPUs; "serve": a
    # tiny model with head size 32, the smallest vLLM's CPU attention takes (make test-vllm)
    tier: str
    architecture: str
    seed: int
    config_dir: Path
    tokenizer_dir: Path | None


@cache
def _load_index(root: Path) -> dict[str, ZooEntry]:
    index_path = root / "zoo" / "index.json"
    raw = json.loads(index_path.read_text())
    return {
        name: ZooEntry(
            name=name,
            tier=item["tier"],
            architecture=item["architecture"],
            seed=int(item["seed"]),
            config_dir=root / "zoo" / name,
            tokenizer_dir=(root / item["tokenizer"]) if item.get("tokenizer") else None,
        )
        for name, item in raw.items()
    }


def list_zoo() -> list[ZooEntry]:
    return list(_load_index(fixtures_dir()).values())


def default_model_names() -> list[str]:
    """Zoo models run when no --infer-model is given: the tiny tier."""
    return [entry.name for entry in list_zoo() if entry.tier == "tiny"]


def render_zoo_listing() -> str:
    return ", ".join(f"{e.name} ({e.architecture}, {e.tier})" for e in list_zoo())


def get_entry(name: str) -> ZooEntry:
    index = _load_index(fixtures_dir())
    if name not in index:
        raise UnknownModelError(
            f"--infer-model {name}: not a zoo model and not an existing directory. "
            f"Zoo models: {render_zoo_listing()}. For your own checkpoint pass the path "
            "of a local Hugging Face directory (config.json + *.safetensors)."
        )
    return index[name]


def build_zoo_model(entry: ZooEntry, dtype: torch.dtype, device: str) -> PreTrainedModel:
    """Build the entry's model with seeded float32 weights, held in `dtype` on `device`.

    The float32 master weights are the same for every dtype, so float32 and bf16
    runs of one entry are the same model at two precisions.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(entry.config_dir, local_files_only=True)
    torch.manual_seed(entry.seed)
    if entry.tier == "shape":
        # Too large to build twice on the host: draw the weights on the device in
        # the target dtype directly.
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        return model.eval()
    master = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.load_state_dict(master.state_dict())
    return model.to(device).eval()

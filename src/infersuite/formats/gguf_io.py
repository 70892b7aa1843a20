"""Write and read GGUF files with llama.cpp's tensor names, Q/K permutation and metadata."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersuite.formats.errors import FormatError

if TYPE_CHECKING:
    import numpy as np
    import torch

# HF name (after "model.layers.N.") -> llama.cpp name (after "blk.N."), from
# gguf-py's tensor_mapping.py for LLAMA / QWEN2.
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
# model_type -> llama.cpp architecture. llama.cpp permutes Q/K rows only for
# LLAMA (its rope is interleaved); qwen2 uses NEOX rope and is stored unpermuted.
GGUF_ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2"}
PERMUTED_ARCHITECTURES = ("llama",)


@dataclass(frozen=True)
class GgufTensor:
    name: str
    qtype: Any  # gguf.GGMLQuantizationType
    data: np.ndarray  # raw: float arrays for F32/F16, uint8 blocks for quantized types


@dataclass(frozen=True)
class GgufFile:
    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, GgufTensor]


def gguf_architecture(config: Any) -> str:
    """llama.cpp's name for the model's architecture; FormatError if not supported."""
    arch = GGUF_ARCHITECTURES.get(config.model_type)
    if arch is None:
        raise FormatError(
            f"model_type {config.model_type!r}: the GGUF writer here supports Llama-family "
            f"layouts only ({', '.join(GGUF_ARCHITECTURES)}); other architectures need their "
            "own llama.cpp tensor map")
    return arch


def to_gguf_name(hf_name: str) -> str:
    if hf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf_name]
    match = _LAYER_RE.match(hf_name)
    if not match or match.group(2) not in _LAYER_NAMES:
        raise FormatError(f"tensor {hf_name!r} has no llama.cpp name in this writer")
    return f"blk.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"


def permute_qk(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf.py `permute` (HF half-split rope -> interleaved)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def unpermute_qk(weights: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of permute_qk."""
    return (weights.reshape(n_head, weights.shape[0] // n_head // 2, 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _qk_heads(gguf_name: str, config: Any) -> int | None:
    """Heads to permute by for Q (n_head) and K (n_head_kv) rows; None otherwise."""
    kind = gguf_name.split(".")[-2] if gguf_name.startswith("blk.") else ""
    if kind == "attn_q":
        return config.num_attention_heads
    if kind == "attn_k":
        return getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return None


def storage_type(array: np.ndarray, qtype: Any) -> Any:
    """llama.cpp keeps 1-D tensors (norms, biases) in F32; matrices get `qtype`
    when their rows split into whole blocks."""
    import gguf

    if array.ndim < 2:
        return gguf.GGMLQuantizationType.F32
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    return qtype if array.shape[-1] % block == 0 else gguf.GGMLQuantizationType.F16


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _add_metadata(writer: Any, config: Any, file_type: int) -> None:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)


def encode_tensor(array: np.ndarray, qtype: Any) -> np.ndarray:
    """float32 array -> what GGUFWriter stores for `qtype` (uint8 blocks when quantized)."""
    import gguf

    return gguf.quants.quantize(array.astype("float32"), qtype)


def write_gguf(state: Mapping[str, torch.Tensor], config: Any, path: Path, qtype: Any,
               tokenizer: Any | None = None) -> float:
    """Write a Llama-family state dict as GGUF; returns the seconds it took.

    With `tokenizer` (a transformers byte-level BPE tokenizer) the file carries the
    ``tokenizer.ggml.*`` vocabulary llama.cpp needs to load it (see gguf_vocab);
    without one it holds weights and model metadata only."""
    import gguf

    start = time.perf_counter()
    arch = gguf_architecture(config)
    vocab = None
    if tokenizer is not None:
        from infersuite.formats.gguf_vocab import build_vocab

        vocab = build_vocab(tokenizer, config)  # before the file is opened: errors leave none
    writer = gguf.GGUFWriter(str(path), arch)
    _add_metadata(writer, config, int(getattr(gguf.LlamaFileType, f"MOSTLY_{qtype.name}",
                                              gguf.LlamaFileType.ALL_F32)))
    if vocab is not None:
        from infersuite.formats.gguf_vocab import add_vocab

        add_vocab(writer, vocab)
    for hf_name, tensor in state.items():
        name = to_gguf_name(hf_name)
        array = tensor.detach().to("cpu").float().numpy()
        heads = _qk_heads(name, config)
        if heads is not None and arch in PERMUTED_ARCHITECTURES:
            array = permute_qk(array, heads)
        kind = storage_type(array, qtype)
        writer.add_tensor(name, encode_tensor(array, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return time.perf_counter() - start


def read_gguf(path: Path) -> GgufFile:
    """Tensors (raw, as stored) and metadata of a GGUF file; FormatError if unreadable."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise FormatError(f"{path}: not a readable GGUF file ({exc}); re-write or "
                          "re-download it") from exc
    metadata = {name: field.contents() for name, field in reader.fields.items()
                if not name.startswith("GGUF.")}
    tensors = {t.name: GgufTensor(t.name, t.tensor_type, t.data) for t in reader.tensors}
    return GgufFile(Path(path), metadata, tensors)


def decode_tensor(tensor: GgufTensor) -> np.ndarray:
    """Dequantize to float32 in the GGUF (possibly Q/K-permuted) row order."""
    import gguf
    import numpy as np

    return np.asarray(gguf.quants.dequantize(tensor.data, tensor.qtype), dtype=np.float32)


def to_hf_state_dict(gguf_file: GgufFile, reference: Mapping[str, torch.Tensor],
                     config: Any) -> dict[str, torch.Tensor]:
    """Dequantized float32 tensors under the HF names of `reference`, Q/K rows restored."""
    import torch

    arch = gguf_architecture(config)
    state: dict[str, torch.Tensor] = {}
    for hf_name, ref in reference.items():
        name = to_gguf_name(hf_name)
        if name not in gguf_file.tensors:
            raise FormatError(f"{gguf_file.path}: no tensor {name!r} (for {hf_name!r})")
        array = decode_tensor(gguf_file.tensors[name]).reshape(tuple(ref.shape))
        heads = _qk_heads(name, config)
        if heads is not None and arch in PERMUTED_ARCHITECTURES:
            array = unpermute_qk(array, heads)
        state[hf_name] = torch.from_numpy(array.copy())
    return state

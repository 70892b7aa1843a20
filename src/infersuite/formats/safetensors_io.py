"""Read and write safetensors checkpoints, validating headers before trusting them."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from infersuite.formats.errors import FormatError

if TYPE_CHECKING:
    import torch

INDEX_NAME = "model.safetensors.index.json"
# Header sizes above this are not a real checkpoint (the format caps it at 100 MB).
MAX_HEADER_BYTES = 100_000_000
DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
    "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8,
}
_FIX = "re-save the checkpoint (save_pretrained / safetensors.torch.save_file) or re-download it"


def _read_header(path: Path) -> tuple[dict[str, dict], int]:
    """Parse the JSON header; returns (tensor entries, size of the data section)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise FormatError(f"{path}: {size} bytes, too short to hold a safetensors header "
                              f"(8-byte length prefix); the file is truncated; {_FIX}")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(MAX_HEADER_BYTES, size - 8):
            raise FormatError(f"{path}: header length prefix says {header_len} bytes but the "
                              f"file has {size - 8} after the prefix; the file is truncated or "
                              f"not safetensors; {_FIX}")
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: header is not valid JSON ({exc}); {_FIX}") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: header is {type(header).__name__}, expected an object; {_FIX}")
    header.pop("__metadata__", None)
    return header, size - 8 - header_len


def _check_entry(path: Path, name: str, entry: object) -> tuple[int, int]:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise FormatError(f"{path}: tensor {name!r}: header entry {entry!r} lacks dtype, shape "
                          f"or data_offsets; {_FIX}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_BYTES:
        raise FormatError(f"{path}: tensor {name!r}: unknown dtype {dtype!r} in the header "
                          f"(known: {', '.join(DTYPE_BYTES)}); {_FIX}")
    begin, end = (int(v) for v in offsets)
    expected = math.prod(int(d) for d in shape) * DTYPE_BYTES[dtype]
    if end - begin != expected:
        raise FormatError(
            f"{path}: tensor {name!r}: header says {dtype} {list(shape)} = {expected} bytes but "
            f"data_offsets [{begin}, {end}) span {end - begin}; the header lies about offsets "
            f"or dtype; {_FIX}")
    return begin, end


def validate_safetensors_file(path: Path) -> dict[str, dict]:
    """Check the header against the file before any tensor is read; returns the header."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file; check the path or the shard index")
    header, data_bytes = _read_header(path)
    spans = sorted((_check_entry(path, name, entry), name) for name, entry in header.items())
    cursor = 0
    for (begin, end), name in spans:
        if begin != cursor:
            raise FormatError(f"{path}: tensor {name!r} starts at byte {begin} of the data "
                              f"section, expected {cursor} (overlap or gap); the header lies "
                              f"about offsets; {_FIX}")
        cursor = end
    if cursor != data_bytes:
        raise FormatError(f"{path}: header accounts for {cursor} data bytes but the file holds "
                          f"{data_bytes}; the file is truncated or has trailing data; {_FIX}")
    return header


def load_safetensors_file(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of one file, after validation; library errors become FormatError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    validate_safetensors_file(path)
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise FormatError(f"{path}: safetensors could not read it: {exc}; {_FIX}") from exc


def load_safetensors_dir(directory: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint directory: one model.safetensors or an index + shards."""
    directory = Path(directory)
    index_path = directory / INDEX_NAME
    if not index_path.is_file():
        return load_safetensors_file(directory / "model.safetensors", device)
    try:
        weight_map: Mapping[str, str] = json.loads(index_path.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise FormatError(f"{index_path}: not a valid shard index ({exc!r}); it needs a "
                          f"'weight_map' of tensor name -> shard file; {_FIX}") from None
    shards = sorted(set(weight_map.values()))
    missing = [s for s in shards if not (directory / s).is_file()]
    if missing:
        names = [n for n, s in weight_map.items() if s == missing[0]]
        raise FormatError(
            f"{index_path}: names shard(s) {', '.join(missing)} that are not in {directory} "
            f"({len(names)} tensors, e.g. {names[0]!r}, live there); copy the missing shard "
            f"or {_FIX}")
    tensors: dict[str, torch.Tensor] = {}
    for shard in shards:
        tensors.update(load_safetensors_file(directory / shard, device))
    absent = sorted(set(weight_map) - set(tensors))
    if absent:
        raise FormatError(f"{index_path}: tensor {absent[0]!r} is mapped to "
                          f"{weight_map[absent[0]]} but that file does not hold it "
                          f"({len(absent)} such tensors); {_FIX}")
    return tensors


def save_safetensors_file(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Save contiguous copies; tied (shared-storage) tensors must be deduplicated first."""
    from safetensors.torch import save_file

    save_file({name: t.detach().contiguous() for name, t in tensors.items()}, str(path))

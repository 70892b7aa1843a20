"""The baseline file: versioned schema, validated loading, atomic saving with run history.

Layout (``"schema": "infersuite.baseline/1"``)::

    {"schema", "fingerprint", "created", "updated", "history_limit",
     "benchmarks": {fullname: {"name", "group", "metric", "unit",
                               "runs": [{"timestamp", "git_commit", "median", "n"}, ...],
                               "samples": [latest run's raw samples]}}}

`runs` keeps the last `history_limit` runs' medians, so the between-run spread is known.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from infersuite.measure.records import PerfRecord

BASELINE_SCHEMA = "infersuite.baseline/1"
DEFAULT_HISTORY_LIMIT = 10


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the path, the problem, a fix."""


def _fail(path: Path, problem: str) -> BaselineError:
    return BaselineError(
        f"baseline {path}: {problem}. The file was left untouched; restore it from version "
        "control, or point --infer-baseline/--infer-save-baseline at a new path to start "
        "a fresh baseline"
    )


def _check_benchmark(path: Path, key: str, entry: Any) -> None:
    if not isinstance(entry, dict):
        raise _fail(path, f"benchmark {key!r} is not an object")
    samples, runs = entry.get("samples"), entry.get("runs")
    if not isinstance(samples, list) or not all(
        isinstance(v, (int, float)) and math.isfinite(v) for v in samples
    ):
        raise _fail(path, f"benchmark {key!r}: 'samples' must be a list of finite numbers")
    if not isinstance(runs, list) or not all(
        isinstance(r, dict) and isinstance(r.get("median"), (int, float)) for r in runs
    ):
        raise _fail(path, f"benchmark {key!r}: 'runs' must be a list of {{'median': ...}}")


def parse_baseline(path: Path, text: str) -> dict[str, Any]:
    """Validate a baseline file's text; BaselineError says what is wrong."""
    if not text.strip():
        raise _fail(path, "the file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON (truncated or corrupt? {exc})") from None
    if not isinstance(data, dict):
        raise _fail(path, "the top level is not a JSON object")
    schema = data.get("schema")
    if schema != BASELINE_SCHEMA:
        raise _fail(path, f"schema is {schema!r}, this infersuite reads {BASELINE_SCHEMA!r}")
    fingerprint = data.get("fingerprint")
    if not isinstance(fingerprint, dict) or not isinstance(fingerprint.get("slug"), str):
        raise _fail(path, "no device fingerprint (fingerprint.slug)")
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, dict):
        raise _fail(path, "'benchmarks' is missing or not an object")
    for key, entry in benchmarks.items():
        _check_benchmark(path, key, entry)
    return data


def load_baseline(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(
            f"baseline {path}: no such file; create one with --infer-save-baseline {path}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot be read ({exc})") from None
    return parse_baseline(path, text)


def load_baseline_if_exists(path: Path) -> dict[str, Any] | None:
    return load_baseline(path) if Path(path).exists() else None


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def merge_run(
    existing: dict[str, Any] | None,
    records: Sequence[PerfRecord],
    fingerprint: dict[str, Any],
    history_limit: int = DEFAULT_HISTORY_LIMIT,
) -> dict[str, Any]:
    """The baseline after appending this run (a new dict; `existing` is not modified)."""
    stamp = _now()
    data: dict[str, Any] = json.loads(json.dumps(existing)) if existing else {
        "schema": BASELINE_SCHEMA, "created": stamp, "benchmarks": {}}
    data["fingerprint"] = fingerprint
    data["updated"] = stamp
    data["history_limit"] = history_limit
    for record in records:
        samples = record.primary_samples()
        if not samples:
            continue
        entry = data["benchmarks"].setdefault(record.fullname, {"runs": []})
        entry.update(name=record.name, group=record.group, metric=record.primary, unit="s",
                     samples=list(samples))
        entry["runs"] = [*entry["runs"], {"timestamp": stamp,
                                          "git_commit": fingerprint.get("git_commit"),
                                          "median": _median(samples), "n": len(samples)}
                         ][-history_limit:]
    return data


def _target_mode(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, fsync, then os.replace: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp_name, _target_mode(path))  # mkstemp makes 0600; keep a normal file mode
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def save_baseline(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=False) + "\n")


def baseline_samples(data: dict[str, Any]) -> dict[str, list[float]]:
    return {key: list(entry["samples"]) for key, entry in data["benchmarks"].items()}


def baseline_run_medians(data: dict[str, Any], key: str) -> list[float]:
    entry = data["benchmarks"].get(key) or {}
    return [float(r["median"]) for r in entry.get("runs", [])]


def check_same_device(path: Path, data: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """Refuse a baseline recorded on another device (the slugs differ)."""
    theirs, ours = data["fingerprint"]["slug"], fingerprint["slug"]
    if theirs != ours:
        raise BaselineError(
            f"baseline {path}: recorded on {theirs!r}, this run is on {ours!r}; timings from "
            "different devices do not compare. Use the baseline for this device "
            f"(baselines/{ours}.json), or pass --infer-baseline-any-device to compare anyway"
        )

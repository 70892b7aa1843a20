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
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from infersuite.atomic import write_text_atomic
from infersuite.documents import DocumentError, parse_document, read_text
from infersuite.measure.records import PerfRecord
from infersuite.stats.percentiles import compute_percentile

BASELINE_SCHEMA = "infersuite.baseline/1"
DEFAULT_HISTORY_LIMIT = 10


class BaselineError(DocumentError):
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
    data = parse_document(text, BASELINE_SCHEMA, {"fingerprint": dict, "benchmarks": dict},
                          lambda problem: _fail(path, problem))
    if not isinstance(data["fingerprint"].get("slug"), str):
        raise _fail(path, "no device fingerprint (fingerprint.slug)")
    for key, entry in data["benchmarks"].items():
        _check_benchmark(path, key, entry)
    return data


def load_baseline(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise BaselineError(
            f"baseline {path}: no such file; create one with --infer-save-baseline {path}")
    return parse_baseline(path, read_text(path, lambda problem: _fail(path, problem)))


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
        run = {"timestamp": stamp, "git_commit": fingerprint.get("git_commit"),
               "median": compute_percentile(samples, 50), "n": len(samples)}
        probes = record.metrics.get("probe_s", [])
        if len(probes) == len(samples):  # the reference probe of each sample's round
            entry["probe_samples"] = list(probes)
            run["median_normalized"] = compute_percentile(
                [s / p for s, p in zip(samples, probes, strict=True)], 50)
            # the host's speed, and its bursts (a busy host shows in the probe's tail first)
            run["probe_median"] = compute_percentile(probes, 50)
            run["probe_p90"] = compute_percentile(probes, 90)
        else:
            entry.pop("probe_samples", None)
        energy = record.extra.get("energy")
        if isinstance(energy, dict) and energy.get("status") == "ok":
            entry["energy"] = energy  # the latest run's; each run keeps its J/token and W
            run.update(joules_per_token=energy.get("joules_per_token"),
                       avg_power_w=energy.get("avg_power_w"))
        entry["runs"] = [*entry["runs"], run][-history_limit:]
    return data


def save_baseline(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=False) + "\n")


def baseline_samples(data: dict[str, Any]) -> dict[str, list[float]]:
    return {key: list(entry["samples"]) for key, entry in data["benchmarks"].items()}


def baseline_run_medians(data: dict[str, Any], key: str) -> list[float]:
    entry = data["benchmarks"].get(key) or {}
    return [float(r["median"]) for r in entry.get("runs", [])]


def baseline_probes(data: dict[str, Any], key: str
                    ) -> tuple[list[float], list[float], dict[str, list[float]]] | None:
    """(probe samples of the latest run, per-run medians of the normalized samples, the
    probe's per-run median and p90 as {"p50": [...], "p90": [...]}) where the baseline has
    them (older runs lack a normalized median, or the probe's own statistics)."""
    entry = data["benchmarks"].get(key) or {}
    probes = entry.get("probe_samples")
    if not isinstance(probes, list) or len(probes) != len(entry.get("samples", [])):
        return None
    runs = entry.get("runs", [])

    def numbers(field: str) -> list[float]:
        return [float(r[field]) for r in runs if isinstance(r.get(field), (int, float))]

    return ([float(p) for p in probes], numbers("median_normalized"),
            {"p50": numbers("probe_median"), "p90": numbers("probe_p90")})


def check_same_device(path: Path, data: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """Refuse a baseline recorded on another device (the slugs differ)."""
    theirs, ours = data["fingerprint"]["slug"], fingerprint["slug"]
    if theirs != ours:
        raise BaselineError(
            f"baseline {path}: recorded on {theirs!r}, this run is on {ours!r}; timings from "
            "different devices do not compare. Use the baseline for this device "
            f"(baselines/{ours}.json), or pass --infer-baseline-any-device to compare anyway"
        )

"""What one benchmark hands to the reports and the gate: raw samples per metric."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from infersuite.measure.tokens import STAGES, RequestTiming


@dataclass
class PerfRecord:
    """Raw samples (seconds unless the metric name says otherwise) of one benchmark.

    `primary` names the metric the gate compares; `source` is "infersuite" for records a
    test handed over, "pytest-benchmark" for round times taken from a plain benchmark.
    """

    name: str
    fullname: str
    primary: str
    metrics: dict[str, list[float]]
    group: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = "infersuite"

    def primary_samples(self) -> list[float]:
        return self.metrics.get(self.primary, [])


def compute_request_metrics(timings: Sequence[RequestTiming]) -> dict[str, list[float]]:
    """Pool per-request timings: one E2E/TTFT/TPOT per request, every ITL gap, stages."""
    metrics: dict[str, list[float]] = {
        "e2e_s": [t.e2e_s for t in timings],
        "ttft_s": [t.ttft_s for t in timings],
        "tpot_s": [t.tpot_s for t in timings if t.n_generated > 1],
        "itl_s": [gap for t in timings for gap in t.itl_s],
    }
    for stage in STAGES:
        values = [t.stages[stage] for t in timings if stage in t.stages]
        if values:
            metrics[stage] = values
    return metrics

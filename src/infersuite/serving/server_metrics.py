"""What a server says about its own time: the prefill/decode split from its Prometheus
``/metrics`` (vLLM's ``vllm:request_prefill_time_seconds`` and friends), when it has them.

A load level scrapes ``/metrics`` before and after; the change in each histogram's sum and
count gives the mean time per request the server spent queued, in prefill and in decode
during that level. Servers without the route (llama-cpp-python) give nothing.
"""

from __future__ import annotations

from typing import Any

# Histogram name fragments -> the phase they time (vLLM v1 names; others match by fragment).
PHASES = {"queue_time": "queue", "prefill_time": "prefill", "decode_time": "decode"}


def scrape_phases(client: Any) -> dict[str, tuple[float, float]] | None:
    """{phase: (sum_s, count)} from the server's /metrics; None without the route."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        response = client.get("/metrics")
    except Exception:  # a server without the route, or one that closed: no split
        return None
    if response.status_code != 200:
        return None
    found: dict[str, tuple[float, float]] = {}
    try:
        families = list(text_string_to_metric_families(response.text))
    except ValueError:  # not the Prometheus text format: no split
        return None
    for family in families:
        phase = next((p for fragment, p in PHASES.items() if fragment in family.name), None)
        if phase is None or family.type != "histogram":
            continue
        total, count = found.get(phase, (0.0, 0.0))
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
        found[phase] = (total, count)
    return found or None


def compute_phase_means(before: dict[str, tuple[float, float]] | None,
                        after: dict[str, tuple[float, float]] | None) -> dict[str, float]:
    """Mean seconds per request in each phase between two scrapes."""
    if not before or not after:
        return {}
    means = {}
    for phase, (total, count) in after.items():
        total0, count0 = before.get(phase, (0.0, 0.0))
        if count > count0:
            means[f"{phase}_s"] = (total - total0) / (count - count0)
    return means

"""Pure statistics on measured samples: percentiles, regression verdicts, sweep knees.

No I/O and no printing here; callers render the returned dataclasses and dicts.
"""

from infersuite.stats.compare import compute_run_effect, compute_run_noise
from infersuite.stats.knee import (
    Knee,
    KneeReport,
    analyze_sweep,
    compute_kneedle,
    compute_power_knee,
    compute_slo_knee,
)
from infersuite.stats.percentiles import (
    LatencySummary,
    PercentileEstimate,
    compute_percentile_interval,
    compute_percentiles,
    compute_summary,
    min_samples_for_percentile,
)
from infersuite.stats.saturation import fit_saturation
from infersuite.stats.sweep import SweepPoint

__all__ = [
    "Knee",
    "KneeReport",
    "LatencySummary",
    "PercentileEstimate",
    "SweepPoint",
    "analyze_sweep",
    "compute_kneedle",
    "compute_percentile_interval",
    "compute_percentiles",
    "compute_power_knee",
    "compute_run_effect",
    "compute_run_noise",
    "compute_slo_knee",
    "compute_summary",
    "fit_saturation",
    "min_samples_for_percentile",
]

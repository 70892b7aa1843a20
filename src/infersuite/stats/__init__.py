"""Pure statistics on measured samples: percentiles, regression verdicts, sweep knees.

No I/O and no printing here; callers render the returned dataclasses and dicts.
"""

from infersuite.stats.compare import (
    ShiftEstimate,
    Verdict,
    compute_history_spread,
    compute_shift,
    compute_verdict,
)
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
    "ShiftEstimate",
    "SweepPoint",
    "Verdict",
    "analyze_sweep",
    "compute_history_spread",
    "compute_kneedle",
    "compute_percentile_interval",
    "compute_percentiles",
    "compute_power_knee",
    "compute_shift",
    "compute_slo_knee",
    "compute_summary",
    "compute_verdict",
    "fit_saturation",
    "min_samples_for_percentile",
]

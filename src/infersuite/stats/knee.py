"""Knee points of a batch-size / concurrency sweep (docs/knee.md).

Reported in this order: the SLO knee (largest batch whose p99 -- its upper bound when known
-- meets the SLO), the power knee (argmax throughput / p50 latency, Kleinrock's power), a
fitted saturation model (see ``saturation``), and Kneedle only as a flagged diagnostic.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

from infersuite.stats.saturation import fit_saturation
from infersuite.stats.sweep import SweepPoint, grid_distance, ok_points

__all__ = [
    "Knee",
    "KneeReport",
    "SweepPoint",
    "analyze_sweep",
    "compute_kneedle",
    "compute_power_knee",
    "compute_slo_knee",
    "fit_saturation",
]


@dataclass(frozen=True)
class Knee:
    """A chosen batch size, the method that chose it and the numbers behind it."""

    batch_size: int
    method: str
    detail: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"batch_size": self.batch_size, "method": self.method, "detail": self.detail}


@dataclass(frozen=True)
class KneeReport:
    """Everything ``analyze_sweep`` found, including the points it ignored."""

    points: tuple[SweepPoint, ...]
    slo_knee: Knee | None
    power_knee: Knee | None
    fit: dict[str, object]
    kneedle: dict[str, object]
    warnings: list[str]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready; a missing knee is ``{"batch_size": None, ...}`` so the shape is fixed."""
        return {
            "power_knee": _knee_dict(self.power_knee, "power"),
            "slo_knee": _knee_dict(self.slo_knee, "slo"),
            "fit": self.fit,
            "kneedle": self.kneedle,
            "points": [p.to_dict() for p in self.points],
            "warnings": list(self.warnings),
        }


def compute_slo_knee(
    points: Iterable[SweepPoint], slo: float | None = None, slo_factor: float = 2.0
) -> Knee | None:
    """Largest ok batch whose p99 (upper bound when known) <= SLO; None if none meets it.

    ``slo`` is in the latency unit of the points; default ``slo_factor`` x p99 at the
    smallest ok batch. ``detail`` says which SLO and which latency were used.
    """
    usable = [p for p in ok_points(points) if p.latency_p99 is not None]
    if not usable:
        return None
    slo_value, source = _resolve_slo(usable, slo, slo_factor)
    latencies = {p.batch_size: _slo_latency(p) for p in usable}
    meeting = [b for b, lat in latencies.items() if lat <= slo_value]
    if not meeting:
        return None
    knee = max(meeting)
    detail: dict[str, object] = {
        "slo": slo_value,
        "slo_source": source,
        "latency_at_knee": latencies[knee],
        "latency_used": _latency_kind(usable),
        "violations_below_knee": [
            b for b, lat in latencies.items() if b < knee and lat > slo_value
        ],
    }
    return Knee(knee, "slo", detail)


def compute_power_knee(points: Iterable[SweepPoint]) -> Knee | None:
    """Argmax of throughput / latency_p50 over ok points (ties: the smaller batch)."""
    usable = [
        p
        for p in ok_points(points)
        if p.throughput is not None and p.latency_p50 is not None and p.latency_p50 > 0.0
    ]
    if not usable:
        return None
    power = {p.batch_size: p.throughput / p.latency_p50 for p in usable}  # type: ignore[operator]
    knee = max(power, key=lambda b: (power[b], -b))
    batches = sorted(power)
    detail: dict[str, object] = {
        "power": power[knee],
        "power_by_batch": {str(b): power[b] for b in batches},
        "at_sweep_edge": len(batches) > 1 and knee in (batches[0], batches[-1]),
    }
    return Knee(knee, "power", detail)


def compute_kneedle(points: Iterable[SweepPoint]) -> dict[str, object]:
    """Kneedle (``kneed``) on throughput vs batch, flagged when it disagrees with the power knee.

    "disagrees" is True when Kneedle finds no knee or lands more than one grid step away.
    """
    try:
        from kneed import KneeLocator
    except ImportError:
        return {"batch_size": None, "note": "pip install kneed"}
    points = list(points)
    usable = [p for p in ok_points(points) if p.throughput is not None]
    if len(usable) < 3:
        note = f"kneedle needs >= 3 ok points, got {len(usable)}"
        return {"batch_size": None, "disagrees": None, "note": note}
    xs = [p.batch_size for p in usable]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kneed warns when it finds no knee; reported below
        found = KneeLocator(
            xs, [p.throughput for p in usable], curve="concave", direction="increasing"
        ).knee
    power = compute_power_knee(points)
    result: dict[str, object] = {
        "batch_size": None if found is None else round(float(found)),
        "power_knee_batch_size": None if power is None else power.batch_size,
        "grid_steps_from_power_knee": None,
        "disagrees": True,
        "note": "kneedle found no knee" if found is None else "",
    }
    if found is None:
        return result
    if power is None:
        return {**result, "disagrees": None, "note": "no power knee to compare (no latency_p50)"}
    steps = grid_distance(xs, round(float(found)), power.batch_size)
    return {**result, "grid_steps_from_power_knee": steps, "disagrees": steps > 1}


def analyze_sweep(
    points: Iterable[SweepPoint],
    slo: float | None = None,
    slo_factor: float = 2.0,
    model: str = "auto",
) -> KneeReport:
    """SLO knee, power knee, saturation fit and Kneedle, with warnings a person can act on."""
    if slo is not None and not slo > 0.0:
        raise ValueError(f"slo={slo!r}: must be > 0 (same unit as the latencies)")
    if not slo_factor > 0.0:
        raise ValueError(f"slo_factor={slo_factor!r}: must be > 0, e.g. 2.0")
    pts = tuple(points)
    ok = ok_points(pts)
    slo_knee = compute_slo_knee(ok, slo, slo_factor)
    power_knee = compute_power_knee(ok)
    fit = fit_saturation(ok, model)
    kneedle = compute_kneedle(ok)
    notes = _point_warnings(pts, ok) + _slo_warnings(ok, slo_knee, slo, slo_factor)
    notes += _result_warnings(power_knee, fit, kneedle)
    return KneeReport(pts, slo_knee, power_knee, fit, kneedle, notes)


def _point_warnings(points: tuple[SweepPoint, ...], ok: list[SweepPoint]) -> list[str]:
    notes = [
        f"batch_size {p.batch_size}: {p.status}; recorded, ignored by the knee math"
        for p in points
        if p.status != "ok"
    ]
    failed = [p.batch_size for p in points if p.status != "ok"]
    if not ok:
        notes.append("no ok points: nothing to analyze; check the sweep's status column")
    elif failed and ok[-1].batch_size > min(failed):
        notes.append(
            f"ok points above the failed batch_size {min(failed)}; a failure "
            "normally ends a sweep, check that the runner stopped there"
        )
    if 0 < len(ok) < 3:
        notes.append(
            f"only {len(ok)} ok points: knees are rough and no model can be fitted; "
            "sweep more batch sizes (e.g. powers of 2 up to the first OOM)"
        )
    return notes


def _slo_warnings(
    ok: list[SweepPoint], knee: Knee | None, slo: float | None, slo_factor: float
) -> list[str]:
    with_p99 = [p for p in ok if p.latency_p99 is not None]
    if ok and not with_p99:
        return ["no ok point has latency_p99: no SLO knee; record p99 latency in the sweep"]
    if not with_p99 or knee is not None:
        return []
    slo_value, source = _resolve_slo(with_p99, slo, slo_factor)
    best = min(_slo_latency(p) for p in with_p99)
    return [
        f"no batch meets the SLO {slo_value:g} ({source}); the lowest p99 is {best:g}: "
        "relax the SLO or make the smallest batch faster"
    ]


def _result_warnings(
    power_knee: Knee | None, fit: dict[str, object], kneedle: dict[str, object]
) -> list[str]:
    notes = []
    if power_knee is not None and power_knee.detail.get("at_sweep_edge"):
        notes.append(
            f"power knee {power_knee.batch_size} is at the edge of the sweep; "
            "extend the sweep past it to confirm"
        )
    if fit["status"] == "failed":
        notes.append(f"saturation fit failed: {fit['reason']}")
    if kneedle.get("disagrees"):
        notes.append(
            f"kneedle ({kneedle['batch_size']}) disagrees with the power knee "
            f"({kneedle.get('power_knee_batch_size')}); Kneedle depends on the sweep "
            "range, prefer the power and SLO knees"
        )
    return notes


def _resolve_slo(
    usable: list[SweepPoint], slo: float | None, slo_factor: float
) -> tuple[float, str]:
    if slo is not None:
        return float(slo), "explicit"
    first = usable[0]
    assert first.latency_p99 is not None  # callers pass points that have p99
    return slo_factor * first.latency_p99, (
        f"default: {slo_factor:g} x p99 at the smallest ok batch_size {first.batch_size}"
    )


def _slo_latency(point: SweepPoint) -> float:
    if point.latency_p99_upper is not None:
        return point.latency_p99_upper
    assert point.latency_p99 is not None
    return point.latency_p99


def _latency_kind(points: list[SweepPoint]) -> str:
    uppers = sum(p.latency_p99_upper is not None for p in points)
    if uppers == len(points):
        return "p99 upper bound"
    return "p99" if uppers == 0 else "p99 upper bound where known, else p99"


def _knee_dict(knee: Knee | None, method: str) -> dict[str, object]:
    if knee is None:
        return {"batch_size": None, "method": method, "detail": {}}
    return knee.to_dict()

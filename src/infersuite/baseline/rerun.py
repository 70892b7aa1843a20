"""A regression must repeat: the flagged benchmarks are measured again in the same job.

On a shared host a benchmark can fall into a slow mode for a whole run (a neighbour's job,
a frequency drop, a cache-hostile co-tenant) that its reference probe misses: the probe
runs between rounds, and the slow mode may favour the code under test. Such a mode is
transient: measured again a minute later, the benchmark is back to its usual time. A
slower code path is not: it is as slow the second time. So a regression stands only when
the re-measurement, judged by the same rule against the same baseline (its own Holm over
the re-measured benchmarks, the whole run's noise floors), is a regression too. Otherwise
it is inconclusive (exit 11), never a pass. A flagged benchmark the re-measurement could
not measure (its test failed, or the child did not run) keeps its first verdict.

The false-alarm rate of the pair is at most that of either stage: a false alarm needs
both. A real slowdown pays the power of the second stage, which judges fewer benchmarks
(a milder Holm correction) on fresh samples.
"""

from __future__ import annotations

from dataclasses import replace

from infersuite.baseline.gate import GateResult, GateRow

RERUN_STATUSES = ("regression",)  # what is re-measured: what fails the gate


def flagged_keys(gate: GateResult) -> list[str]:
    """The benchmarks whose verdict needs a second measurement before it stands."""
    return [row.key for row in gate.rows if row.status in RERUN_STATUSES]


def describe(row: GateRow) -> dict[str, object]:
    """The re-measured verdict, as stored in the first verdict's row."""
    effect = row.effect
    return {"status": row.status,
            "median_ratio": effect.ratio if effect else None,
            "ratio_lower": effect.ratio_lower if effect else None,
            "ratio_upper": effect.ratio_upper if effect else None,
            "p_value_slower_adjusted": row.p_slower_adjusted,
            "gated_on": row.gated_on}


def _said(row: GateRow) -> str:
    ratio = f" at {row.effect.ratio - 1:+.1%}" if row.effect else ""
    p = (f", adjusted p(slower) {row.p_slower_adjusted:.2g}"
         if row.p_slower_adjusted is not None else "")
    return f"measured again it was {row.status}{ratio}{p}"


def apply_rerun(gate: GateResult, rerun: GateResult | None, why_not: str = "") -> GateResult:
    """Each flagged row confirmed by its re-measurement, or made inconclusive. `rerun` is
    None when the re-measurement could not be made (`why_not` says why): the first
    verdicts then stand, with that said."""
    if rerun is None:
        rows = [replace(row, reason=f"{row.reason}; not re-measured: {why_not}")
                if row.status in RERUN_STATUSES else row for row in gate.rows]
        return replace(gate, rows=tuple(rows))
    again = {row.key: row for row in rerun.rows}
    rows = []
    for row in gate.rows:
        if row.status not in RERUN_STATUSES:
            rows.append(row)
            continue
        second = again.get(row.key)
        if second is None:  # its re-measurement failed: the first verdict stands
            rows.append(replace(row, reason=f"{row.reason}; not re-measured: it was not "
                                            "measured again (see the re-measurement's log)"))
            continue
        kept = second.status == row.status
        note = _said(second)
        if kept:
            rows.append(replace(row, rerun=describe(second),
                                reason=f"{row.reason}; repeated: {note}"))
        else:
            rows.append(replace(
                row, status="inconclusive", rerun=describe(second),
                reason=f"inconclusive: not repeated in the same job ({note}), so a "
                       f"transient state of the host, not the code, may have slowed the "
                       f"first measurement; as first judged: {row.reason}"))
    return replace(gate, rows=tuple(rows))

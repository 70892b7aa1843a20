"""The A/B verdict table (terminal and Markdown) from ab.json's rows."""

from __future__ import annotations

from typing import Any


def _cells(row: dict[str, Any]) -> list[str]:
    effect = row["effect"]
    low, high = (("-" if effect[k] is None else f"{(effect[k] - 1) * 100:+.2f}%")
                 for k in ("ratio_lower", "ratio_upper"))
    return [row["name"], row["metric"], row["status"],
            f"{(effect['ratio'] - 1) * 100:+.2f}%", f"[{low}, {high}]",
            f"{row['p_slower_adjusted']:.2g}", str(effect["n"]), f"{row['seconds']:.1f}",
            row["stop"]]


HEADERS = ["benchmark", "metric", "verdict", "B vs A (median round)", "99% CI",
           "adj. p(slower)", "rounds", "s", "stopped at"]


def render_ab_table(rows: list[dict[str, Any]], state: Any, fmt: str = "simple") -> str:
    from tabulate import tabulate

    head = (f"B = {state.spec} vs each benchmark's engine (A); threshold "
            f"{state.threshold:.0%}, alpha 0.01, {state.correction} correction over "
            f"{len(rows)} benchmarks")
    table = tabulate([_cells(r) for r in rows], HEADERS, tablefmt=fmt, disable_numparse=True)
    return head + "\n" + table


def render_ab_markdown(document: dict[str, Any]) -> str:
    from tabulate import tabulate

    rows = document["rows"]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    lines = ["# A/B report", "",
             f"B = `{document['b']}` against each benchmark's own engine (A), in interleaved "
             f"rounds (random order per round). Threshold {document['threshold']:.0%}, alpha "
             f"{document['alpha']:g}, {document['correction']} correction over {len(rows)} "
             "benchmarks.", "",
             "Verdicts: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), "",
             tabulate([_cells(r) for r in rows], HEADERS, tablefmt="github",
                      disable_numparse=True), ""]
    lines += [f"- {r['name']}: {r['reason']}" for r in rows]
    if document.get("not_ab"):
        lines += ["", "Benchmarks measured for A only:", ""]
        lines += [f"- {name}: {why}" for name, why in document["not_ab"].items()]
    return "\n".join(lines) + "\n"

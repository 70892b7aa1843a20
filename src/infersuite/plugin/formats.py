"""pytest plugin: collect format round-trip figures and write formats.json/.md per run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infersuite.atomic import write_text_atomic
from infersuite.plugin.options import is_xdist_worker, settings_key

rows_key = pytest.StashKey[list[dict[str, Any]]]()
COLUMNS = ("format", "model", "variant", "file_bytes", "save_s", "load_s", "export_s",
           "max_abs_diff", "note")


class FormatReport:
    """What tests append to; one row per format/model/variant."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def add(self, format: str, model: str, variant: str, **figures: Any) -> None:
        self._rows.append({"format": format, "model": model, "variant": variant, **figures})


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def render_formats_markdown(rows: list[dict[str, Any]]) -> str:
    extra = sorted({k for row in rows for k in row} - set(COLUMNS))
    columns = [c for c in COLUMNS if any(c in row for row in rows)] + extra
    lines = ["# Model format round trips", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in sorted(rows, key=lambda r: (r["format"], r["model"], r["variant"])):
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def save_format_report(report_dir: Path, rows: list[dict[str, Any]]) -> list[Path]:
    paths = [report_dir / "formats.json", report_dir / "formats.md"]
    write_text_atomic(paths[0], json.dumps({"rows": rows}, indent=2, default=str) + "\n")
    write_text_atomic(paths[1], render_formats_markdown(rows))
    return paths


def pytest_configure(config: pytest.Config) -> None:
    config.stash[rows_key] = []


@pytest.fixture(scope="session")
def format_report(pytestconfig: pytest.Config) -> FormatReport:
    """Rows of format figures, written to the run's report directory at session end."""
    return FormatReport(pytestconfig.stash[rows_key])


def export_state(config: pytest.Config) -> list[dict[str, Any]]:
    """This process's rows, for the xdist controller."""
    rows: list[dict[str, Any]] = config.stash.get(rows_key, [])
    return list(rows)


def merge_state(config: pytest.Config, rows: list[dict[str, Any]]) -> None:
    config.stash[rows_key].extend(rows)


def pytest_sessionfinish(session: pytest.Session) -> None:
    rows = session.config.stash.get(rows_key, [])
    settings = session.config.stash.get(settings_key, None)
    if rows and settings is not None and not is_xdist_worker(session.config):
        save_format_report(Path(settings.report_dir), rows)


def pytest_unconfigure(config: pytest.Config) -> None:
    config.stash.get(rows_key, []).clear()

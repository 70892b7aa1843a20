"""Shared helpers for the project's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "suite"


@pytest.fixture
def copy_suite_module(pytester: pytest.Pytester):
    """Copy a user-facing suite module into the pytester dir (so a local conftest
    can patch the stack under it)."""

    def copy(relative: str) -> Path:
        source = SUITE / relative
        target = pytester.path / source.name
        target.write_text(source.read_text())
        return target

    return copy

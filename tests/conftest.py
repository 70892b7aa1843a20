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
        # A distinct basename: the outer session may already have imported the
        # original module, and pytest refuses two test modules of one name.
        target = pytester.path / source.name.replace("test_", "test_copied_", 1)
        target.write_text(source.read_text())
        return target

    return copy

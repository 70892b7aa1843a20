"""Where the shipped fixtures (zoo configs, tokenizer, trained models) live."""

from __future__ import annotations

import os
from pathlib import Path

FIXTURES_ENV = "INFERSUITE_FIXTURES"


def fixtures_dir() -> Path:
    """The fixtures folder: $INFERSUITE_FIXTURES, else the checkout's fixtures/."""
    override = os.environ.get(FIXTURES_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "fixtures"

"""Where the shipped fixtures (zoo configs, tokenizer, trained models) live."""

from __future__ import annotations

import os
from pathlib import Path

FIXTURES_ENV = "INFERSUITE_FIXTURES"

# Shipped inside the package (package-data), so an installed wheel has them too.
PACKAGE_DATA_DIR = Path(__file__).resolve().parent / "data"


def fixtures_dir() -> Path:
    """The fixtures folder: $INFERSUITE_FIXTURES, else the package's data/ folder."""
    override = os.environ.get(FIXTURES_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return PACKAGE_DATA_DIR

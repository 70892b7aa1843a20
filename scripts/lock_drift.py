"""Print how this environment's packages differ from a lock file (for `make test-latest`).

Usage: python scripts/lock_drift.py requirements/test.txt
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name
from tabulate import tabulate

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)")


def read_pins(lock: Path) -> dict[str, str]:
    """Package name (canonical) -> the exact version the lock pins."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def main(lock: Path) -> int:
    pins = read_pins(lock)
    installed = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in metadata.distributions() if d.metadata["Name"]}
    rows = [(name, pins.get(name, "-"), installed.get(name, "-"))
            for name in sorted(set(pins) | set(installed))
            if pins.get(name) != installed.get(name) and name not in {"pip", "infersuite"}]
    print(f"== packages that differ from {lock}")
    print(tabulate(rows, headers=["package", "lock", "installed"]) if rows else "none")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

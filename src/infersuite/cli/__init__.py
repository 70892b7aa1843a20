"""The `infersuite` command: one argparse parser, one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module defines `add_parser(subparsers)`; the parser it adds sets `func`
# (called with the parsed namespace, returning an exit code).
_SUBCOMMANDS = ("knee", "compare", "report", "runtimes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infersuite",
        description="Inspect infersuite reports, baselines and sweeps.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(f"infersuite.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"infersuite.cli.{name}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

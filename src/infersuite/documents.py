"""Reading the JSON documents infersuite writes: one loader, one set of clear errors.

Each document carries a versioned ``"schema"`` id (``infersuite.report/1``,
``infersuite.baseline/1``, ``infersuite.knee/1``) and declares its required top-level
keys with their JSON types. A file that is empty, truncated, not JSON, of another schema
or version, or missing a key gets an error that names the path and the problem; the
file itself is never modified by reading it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


class DocumentError(ValueError):
    """A document that cannot be used; the message names the path and the problem."""


def read_text(path: Path, fail: Callable[[str], DocumentError]) -> str:
    """The file's text; `fail(problem)` builds the error for a missing or unreadable file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot be read ({exc})") from None


def parse_json_object(text: str, fail: Callable[[str], DocumentError]) -> dict[str, Any]:
    """The JSON object in `text`; empty, truncated or non-object text fails."""
    if not text.strip():
        raise fail("the file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON (truncated or corrupt? {exc})") from None
    if not isinstance(data, dict):
        raise fail(f"the top level is a JSON {type(data).__name__}, not a JSON object")
    return data


def parse_document(text: str, schema: str, required: Mapping[str, type | tuple[type, ...]],
                   fail: Callable[[str], DocumentError]) -> dict[str, Any]:
    """Parse and check a document's JSON text against its schema id and required keys."""
    data = parse_json_object(text, fail)
    if data.get("schema") != schema:
        raise fail(f"schema is {data.get('schema')!r}, this infersuite reads {schema!r}")
    for key, kind in required.items():
        if not isinstance(data.get(key), kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise fail(f"{key!r} is missing or not a {names}")
    return data


def peek_schema(path: Path) -> str | None:
    """The ``schema`` id of a JSON file, or None when it has none or cannot be read."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    schema = data.get("schema") if isinstance(data, dict) else None
    return schema if isinstance(schema, str) else None

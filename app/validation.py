"""Checks shared by every edge that takes input from outside (API bodies, forms, filters, CLI, URL ids)."""
from __future__ import annotations

import re
import uuid
from typing import Any

# C0 and C1 control characters except tab, newline and carriage return, and lone surrogates. NUL cannot be
# stored by PostgreSQL and a surrogate cannot be encoded as UTF-8: both made psycopg2 raise (a 500).
_UNSAFE_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(field: str, value: str) -> str | None:
    """Why `value` is refused as the text of `field` (a message naming both), or None when it is fine."""
    found = _UNSAFE_CHARACTER.search(value)
    if found is None:
        return None
    code = ord(found.group())
    kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"{field} contains {kind} (U+{code:04X})"


def parse_uuid(value: Any) -> str | None:
    """The canonical UUID string of an id from outside (a job, request or schedule id), or None for anything
    malformed."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        return None

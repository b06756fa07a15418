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


def clean_text(value: str) -> str:
    """Text from an outside service (a release, a Plex item, a torrent client's answer) made storable: lone
    surrogates become U+FFFD, NUL and the other control characters of `_UNSAFE_CHARACTER` are dropped.
    Tab, newline and carriage return are kept; nothing else changes."""
    return _UNSAFE_CHARACTER.sub(_replacement, value) if _UNSAFE_CHARACTER.search(value) else value


def _replacement(found: re.Match) -> str:
    return "\ufffd" if 0xD800 <= ord(found.group()) <= 0xDFFF else ""


# Column limits of PostgreSQL: varchar (Peewee's CharField), integer, bigint. Outside data beyond them made
# an INSERT fail the whole job; callers skip such a record instead (with an event).
VARCHAR_CHARS = 255
INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1


def too_long(field: str, text: str | None, limit: int = VARCHAR_CHARS) -> str | None:
    return None if text is None or len(text) <= limit else f"{field} is longer than {limit} characters"


def out_of_range(field: str, value: int | None, maximum: int, minimum: int | None = None) -> str | None:
    low = -maximum - 1 if minimum is None else minimum
    return None if value is None or low <= value <= maximum else f"{field} {value} is out of range"


def parse_uuid(value: Any) -> str | None:
    """The canonical UUID string of an id from outside (a job, request or schedule id), or None for anything
    malformed."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        return None

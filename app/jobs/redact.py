"""Secret redaction for everything that reaches job_events, job rows and logs."""
from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable

REDACTED = "[REDACTED]"

# Dict keys whose values are secrets, whatever their spelling (apiKey, api_key, X-Api-Key, plexToken...).
_SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|api[-_]?key|apikey|authorization|cookie|session[-_]?id|^sid$)",
                         re.IGNORECASE)
# key=value pairs inside URLs, query strings, headers written as text.
_SECRET_PAIR = re.compile(
    r"(?P<key>(?:x-plex-token|x-api-key|api[-_]?key|apikey|access[-_]?token|token|password|passwd|secret)"
    r"(?:\"|')?\s*[=:]\s*(?:\"|')?)(?P<value>[^&\s\"',;}]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<key>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]{6,})", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?P<key>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<value>[^@\s/]+)(?=@)", re.IGNORECASE)


def redact_text(text: str, known_secrets: Iterable[str] = ()) -> str:
    for secret in known_secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in (_SECRET_PAIR, _BEARER, _URL_CREDENTIALS):
        text = pattern.sub(lambda m: m.group("key") + REDACTED, text)
    return text


def redact(value: Any, known_secrets: Iterable[str] = ()) -> Any:
    """A JSON-safe deep copy of `value` with secrets replaced by [REDACTED]."""
    secrets = tuple(known_secrets)
    return _redact(_json_safe(value), secrets)


def _redact(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(k) and v not in (None, "") else _redact(v, secrets))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Convert to plain JSON types: dict keys to str, sets/tuples to lists, NaN/inf and objects to strings."""
    if depth > 20:
        return repr(value)[:200]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v, depth + 1) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)

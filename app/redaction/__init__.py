"""Secret redaction for everything that reaches job_events, job rows and logs.

What is redacted (the secret's *name* is kept, its value becomes [REDACTED]):
- the value of a dict key that names a secret (`_SECRET_KEY`: apiKey, X-Plex-Token, password, passkey…);
- in text: `name=value` and `name: value` pairs for secret names (`_PAIR`), the same pairs URL-encoded
  inside another URL (`apikey%3D…`, `_ENCODED_PAIR`), `Authorization:` and `Cookie:` headers,
  standalone `Bearer`/`Basic` credentials and the password of `scheme://user:password@host` URLs;
- configured secret values (Settings.secret_values()), and those a process registered with
  `add_known_secrets` (the tokens of notification targets kept in the database), wherever they appear;
  `_redact_known` has the rule that keeps very short values from eating ordinary words.

What is not: ordinary prose. A title such as "The Secret: A Novel" or "Token of Love" keeps its words:
the bare words `token`, `secret` and `sid` only count as names when written like one (`token=…`,
`"secret": …`, `sid:abc` with no space after the colon), a standalone `Basic`/`Bearer` only when the
next word looks like a credential (`_looks_like_credential`), `Cookie:` only before `name=`. Names that
never occur in prose (`password`, `api_key`, `passkey`…) count with `name: value` too.

The patterns and their cost: patterns.py; redaction by value of known secrets and the cap on long texts: here.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple

from app.redaction.patterns import _SECRET_KEY, REDACTED, _redact_patterns, looks_like_credential

__all__ = ["MAX_TEXT_CHARS", "REDACTED", "_redact_patterns", "add_known_secrets", "looks_like_credential", "redact",
           "redact_text"]

# Longer texts keep their first and last MAX_TEXT_CHARS / 2 characters: redaction, and whatever stores
# the text, stay bounded. Every caller keeps less (a message 10 000, an error 5 000, a trace's last
# 20 000); release titles, GUIDs and URLs are a few hundred.
MAX_TEXT_CHARS = 64 * 1024

# Configured secrets at least this long are redacted wherever they occur, even inside a word.
_SUBSTRING_MIN_LENGTH = 6


class _KnownSecrets(NamedTuple):
    """Configured secret values, prepared once for many texts (see _redact_known)."""
    all: tuple[str, ...]  # longest first
    anywhere: tuple[str, ...]  # _SUBSTRING_MIN_LENGTH and longer
    tokens: re.Pattern | None  # 2 to 5 characters, as whole tokens


@lru_cache(maxsize=32)
def _prepare(secrets: tuple[str, ...]) -> _KnownSecrets:
    ordered = tuple(sorted({s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True))
    short = [s for s in ordered if 1 < len(s) < _SUBSTRING_MIN_LENGTH]
    return _KnownSecrets(ordered, tuple(s for s in ordered if len(s) >= _SUBSTRING_MIN_LENGTH),
                         _whole_token_pattern(short) if short else None)


def _whole_token_pattern(secrets: list[str]) -> re.Pattern:
    """Any of `secrets` (longest first) not preceded or followed by a letter or digit.

    Each alternative starts with its literal text and checks what precedes it afterwards (a lookbehind
    one character longer than the secret), so the engine only stops where a secret can start."""
    return re.compile("|".join(rf"{re.escape(s)}(?<![^\W_]{re.escape(s)})(?![^\W_])" for s in secrets))


# Secrets this process learnt outside the settings (the tokens of notification targets stored in the database,
# app/notifications/): redacted by value in every text, like the configured ones.
_registered: tuple[str, ...] = ()


def add_known_secrets(values: Iterable[str]) -> None:
    """Redact `values` from now on in every text and value this process redacts (logs, events, job rows)."""
    global _registered
    fresh = tuple(v for v in values if isinstance(v, str) and v and v not in _registered)
    if fresh:
        _registered = _registered + fresh


def _known(known_secrets: Iterable[str]) -> _KnownSecrets:
    return _prepare(tuple(known_secrets) + _registered)


def redact_text(text: str, known_secrets: Iterable[str] = ()) -> str:
    """`text` with every secret replaced by [REDACTED] (see the module docstring for what counts)."""
    return _redact_string(text, _known(known_secrets))


def _redact_string(text: str, known: _KnownSecrets) -> str:
    text = _cap(text, known.all)
    return _redact_patterns(_redact_known(text, known))


def _redact_known(text: str, known: _KnownSecrets) -> str:
    """Replace configured secret values, by value, whatever their length. The rule by length:

    - 6 characters or more: everywhere, even inside a longer word (a key is never a word);
    - 2 to 5 characters: only as a whole token, i.e. not glued to a letter or digit on either side,
      so a password "pw" is redacted in "pw", "user:pw", "[pw]" but "pwd" and "npw1" are left alone;
    - 1 character: only when it is the whole text (e.g. a payload value equal to it), never inside
      other text: even as a token it would blank every "a" or "1" of every message.
    Longer values go first, so a secret containing a shorter one is replaced whole.
    """
    if not known.all:
        return text
    whole = text.strip()
    if whole in known.all:
        start = text.index(whole)
        return text[:start] + REDACTED + text[start + len(whole):]
    for secret in known.anywhere:
        text = text.replace(secret, REDACTED)
    if known.tokens is not None:
        text = known.tokens.sub(REDACTED, text)
    return text


# Characters that end a value in a pair; a cut keeps no partial value next to it.
_VALUE_ENDS = "&\"',;}\t\n\r "


def _cap(text: str, secrets: tuple[str, ...]) -> str:
    """`text`, or when longer than MAX_TEXT_CHARS its first and last MAX_TEXT_CHARS / 2 characters.

    Cut before redaction so redaction stays bounded; so that a cut cannot leave part of a secret whose
    name or rest fell in the dropped middle, each kept part loses its partial word at the cut (up to
    the nearest value end) and any end that is the start (or the end) of a configured secret.
    """
    if len(text) <= MAX_TEXT_CHARS:
        return text
    half = MAX_TEXT_CHARS // 2
    head = _drop_partial_word_at_end(_drop_secret_start_at_end(text[:half], secrets))
    tail = _drop_partial_word_at_start(_drop_secret_end_at_start(text[-half:], secrets))
    return f"{head}\n…[{len(text) - len(head) - len(tail)} characters cut]…\n{tail}"


def _drop_secret_start_at_end(head: str, secrets: tuple[str, ...]) -> str:
    """`head` without its longest end that is the beginning of a secret."""
    cut = max((length for secret in secrets for length in range(1, len(secret))
               if head.endswith(secret[:length])), default=0)
    return head[:len(head) - cut]


def _drop_secret_end_at_start(tail: str, secrets: tuple[str, ...]) -> str:
    """`tail` without its longest start that is the end of a secret."""
    cut = max((length for secret in secrets for length in range(1, len(secret))
               if tail.startswith(secret[-length:])), default=0)
    return tail[cut:]


def _drop_partial_word_at_end(head: str) -> str:
    return head[:max(head.rfind(c) for c in _VALUE_ENDS) + 1]


def _drop_partial_word_at_start(tail: str) -> str:
    found = [i for i in (tail.find(c) for c in _VALUE_ENDS) if i >= 0]
    return tail[min(found):] if found else ""


def redact(value: Any, known_secrets: Iterable[str] = ()) -> Any:
    """A JSON-safe deep copy of `value` with secrets replaced by [REDACTED]."""
    return _redact(_json_safe(value), _known(known_secrets))


def _redact(value: Any, known: _KnownSecrets) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(k) and v not in (None, "") else _redact(v, known))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, known) for v in value]
    if isinstance(value, str):
        return _redact_string(value, known)
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

"""The secret patterns of redaction (what counts as a secret: app/redaction/__init__.py).

Cost: linear in the text, a few milliseconds per 100 kB whatever its shape. The patterns run on a
lower-cased copy without IGNORECASE, so the regex engine skips in C every character that cannot
start a match; no pattern has two unbounded runs that can exchange characters, and the one that
needs a character after a run (`…@` of URL credentials) starts at the literal `://` with runs that
cannot contain it. A text longer than MAX_TEXT_CHARS keeps only its beginning and end (`_cap`).
"""
from __future__ import annotations

import re

REDACTED = "[REDACTED]"
# Lower-cases ASCII only, keeping every position (a few characters lower-case to two).
_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}

# Dict keys whose values are secrets, whatever their spelling (apiKey, api_key, X-Api-Key, plexToken,
# torrent_pass, authkey, QBT_SID_8080...).
_SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|api[-_]?key|apikey|auth[-_]?key|rss[-_]?key|authorization"
                         r"|cookie|session[-_]?id|phpsessid|^sid$|qbt_sid)", re.IGNORECASE)

# Names, lower case (patterns run on a lower-cased copy). Each must start with a plain letter, so that
# the engine can skip the characters that start no name.
# Names that only ever mean a secret: `name=value`, `name: value`, `"name": "value"`.
_NAMES = ("plex[-_]?token", "api[-_]?key", "access[-_]?token", "refresh[-_]?token", "auth[-_]?token",
          "csrf[-_]?token", "secret[-_]?key", "client[-_]?secret", "password", "passwd", "passkey",
          "torrent[-_]?pass", "auth[-_]?key", "rss[-_]?key", r"session[-_]?id", r"qbt_sid_\d{1,5}", "phpsessid")
# Words also used in prose ("The Secret: A Novel"): a name only as `word=value`, `"word": value`, or
# `word:value` (no space after the colon). `sid` must not end a longer word (`insid=`).
_PROSE_NAMES = ("token", "secret", "sid(?<![a-z]sid)")
# Tracker link parameters, a name only as `word=value` (a query): `pass=` (not `bypass=`) and `hash=`, which
# some trackers' download links use for the user's secret. Not `infohash=`, `hashes=` nor a hash written any
# other way: a torrent's info hash is public (every peer and every magnet link has it) and our events show it
# so that an admin can find the torrent in the client.
_QUERY_NAMES = ("pass(?<![a-z0-9_]pass)", "hash(?<![a-z0-9_]hash)")
# Every name contains one of these: a text without any of them skips the name patterns.
_NAME_STEMS = ("key", "token", "pass", "secret", "sid", "session", "hash")

_QUOTE = r"(?:\\?[\"'])"  # a quote, maybe JSON-escaped (\")
_SEPARATOR = rf"{_QUOTE}?\s*[=:]\s*{_QUOTE}?"
_PROSE_SEPARATOR = rf"(?:{_QUOTE}\s*[=:]\s*{_QUOTE}?|\s*=\s*{_QUOTE}?|:{_QUOTE}?)"
_VALUE = r"[^&\s\"',;}]+"

_PAIR = re.compile(
    "(?P<key>" + "|".join([name + _SEPARATOR for name in _NAMES]
                          + [name + _PROSE_SEPARATOR for name in _PROSE_NAMES]
                          + [name + rf"={_QUOTE}?" for name in _QUERY_NAMES]) + f")(?P<value>{_VALUE})")
# The same pairs URL-encoded inside another URL's parameter (Prowlarr links, magnet `tr=` trackers):
# `apikey%3D…` (or double-encoded `%253D`); the value ends at an encoded `&` (%26, %2526). `pass` and `hash`
# without _QUERY_NAMES' lookbehind: there the letter before them ends an escape (`%3Fpass%3D…`).
_ENCODED_RUN = r"[^%&\s\"',;}]*"
_ENCODED_PAIR = re.compile(
    "(?P<key>(?:" + "|".join(_NAMES + _PROSE_NAMES + ("pass", "hash")) + r")%(?:25)?3d)"
    rf"(?P<value>(?!%(?:25)?26)(?=[^&\s\"',;}}]){_ENCODED_RUN}(?:%(?!(?:25)?26){_ENCODED_RUN})*)")
# `Authorization: Bearer <token>`: the scheme word is kept, the credential redacted.
_AUTHORIZATION = re.compile(
    rf"(?P<key>authorization{_SEPARATOR}(?:(?:bearer|basic|digest|token|negotiate)\s+)?)(?P<value>[^\s\"',;}}]+)")
# `Cookie: a=1; SID=…` (and Set-Cookie): the whole header value, when it starts like a cookie (`name=`),
# so prose such as "Fortune Cookie: stories" is left alone.
_COOKIE = re.compile(rf"(?P<key>cookie{_QUOTE}?\s*:\s*{_QUOTE}?)(?P<value>(?=[^\s=;\"']+=)[^\r\n\"']+)")
# A standalone `Bearer xyz` / `Basic xyz`; xyz is redacted when _looks_like_credential (on its real case).
_BEARER = re.compile(r"(?P<key>(?:bearer(?<![a-z0-9_]bearer)|basic(?<![a-z0-9_]basic))\s+)"
                     r"(?P<value>[a-z0-9._~+/=-]{6,})")
# `X-Api-Key 0123…` (a header written with a space): the value when _looks_like_credential (on its real case).
_SPACED_KEY = re.compile(r"(?P<key>(?:api[-_]?key|plex[-_]?token)\s+)(?P<value>[a-z0-9._~+/=-]{6,})")
# scheme://user:password@host; anchored on the literal "://" (the scheme is left untouched). The password runs
# to the authority's last `@`: one written unencoded (`p@ss`) is redacted whole.
_URL_CREDENTIALS = re.compile(r"(?P<key>://[^/\s:@]*:)(?P<value>[^\s/?#]+)(?=@)")
# An http(s) URL, for the passkeys trackers put in paths (`/announce/<passkey>`, `/rss/download/<id>/<key>/`).
_HTTP_URL = re.compile(r"https?://[^\s\"'<>]+")
# A path segment that is a passkey: 16 to 128 letters and digits with both in it ...
_PATH_SECRET = re.compile(r"(?=[a-z]*[0-9])(?=[0-9]*[a-z])[a-z0-9]{16,128}")
# ... but not an info hash (40 or 64 hex digits: public, see _QUERY_NAMES).
_INFO_HASH = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _has_name(folded: str) -> bool:
    return any(stem in folded for stem in _NAME_STEMS)


# (pattern, does this lower-cased text need it?) — the cheap `in` checks skip most passes on most texts.
_FOLDED_PATTERNS = (
    (_PAIR, _has_name),
    (_ENCODED_PAIR, lambda folded: ("%3d" in folded or "%253d" in folded) and _has_name(folded)),
    (_AUTHORIZATION, lambda folded: "authorization" in folded),
    (_COOKIE, lambda folded: "cookie" in folded),
    (_BEARER, lambda folded: "bearer" in folded or "basic" in folded),
    (_SPACED_KEY, lambda folded: "key" in folded or "token" in folded),
    (_URL_CREDENTIALS, lambda folded: "://" in folded),
)
# A credential has 20+ characters, a digit or `=`, a symbol inside it (sk-live, a.b.c) or two lower-to-upper
# case changes (base64: dXNlcjpwYXNz); "Economics." or "McDonald" have none of these. `.{20}` goes first:
# a long word then matches at its first character, so no alternative is tried from every position.
_CREDENTIAL = re.compile(r".{20}|[0-9=]|[._~+/-][A-Za-z0-9]|(?:[A-Z]*[a-z]+[A-Z]){2}")


def _looks_like_credential(word: str) -> bool:
    return _CREDENTIAL.search(word) is not None


def looks_like_credential(word: str) -> bool:
    """Whether `word` (in its real case) looks like a key or token rather than a word (see _CREDENTIAL)."""
    return _looks_like_credential(word)


def _redact_patterns(text: str) -> str:
    folded = text.lower()
    if len(folded) != len(text):  # a few characters lower-case to two (İ): fold ASCII only, same positions
        folded = text.translate(_ASCII_LOWER)
    # Value spans as two lists of ints: a hostile text can give 100 000 matches, and as many tuples
    # kept alive would start the garbage collector over the whole process again and again.
    starts: list[int] = []
    ends: list[int] = []
    for pattern, needed in _FOLDED_PATTERNS:
        if not needed(folded):
            continue
        for match in pattern.finditer(folded):
            start, end = match.start("value"), match.end("value")
            checked = pattern is _BEARER or pattern is _SPACED_KEY
            if not checked or _looks_like_credential(text[start:end]):  # needs the real case
                starts.append(start)
                ends.append(end)
    if "://" in folded:
        _path_secrets(folded, starts, ends)
    return _replace_spans(text, starts, ends)


def _path_secrets(folded: str, starts: list[int], ends: list[int]) -> None:
    """Add the spans of passkeys in the paths of http(s) URLs (_PATH_SECRET, not _INFO_HASH)."""
    for url in _HTTP_URL.finditer(folded):
        begin = folded.find("/", url.start() + url.group().index("://") + 3, url.end())
        if begin < 0:
            continue
        path_end = min((i for i in (folded.find(c, begin, url.end()) for c in "?#") if i >= 0), default=url.end())
        position = begin
        for segment in folded[begin:path_end].split("/"):
            if _PATH_SECRET.fullmatch(segment) and not _INFO_HASH.fullmatch(segment):
                starts.append(position)
                ends.append(position + len(segment))
            position += len(segment) + 1


def _replace_spans(text: str, starts: list[int], ends: list[int]) -> str:
    """`text` with each span starts[i]:ends[i] (overlapping ones merged) replaced by one REDACTED."""
    if not starts:
        return text
    pieces: list[str] = []
    kept_from = 0
    for i in sorted(range(len(starts)), key=starts.__getitem__):
        start, end = starts[i], ends[i]
        if start < kept_from:  # overlaps the previous span: extend it
            kept_from = max(kept_from, end)
            continue
        pieces += (text[kept_from:start], REDACTED)
        kept_from = end
    pieces.append(text[kept_from:])
    return "".join(pieces)

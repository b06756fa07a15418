"""Notification targets as plain data (no I/O): the events, NOTIFY_URLS's syntax, a URL's secret parts and
the redacted form pages show.

A target is an Apprise URL (`json://host/path`, `discord://id/token`, `ntfy://topic`, `mailto://user:pass@host`)
and the events it wants. Apprise URLs carry tokens in any part (a password, a Discord webhook id and token,
a Telegram bot token where a host would be, a key in the path or the query): `url_secrets` names every part
that may be one, so that redaction (app/redaction/) hides them by value and `redacted_url` shows the
rest (scheme, host name, harmless path words).
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from app.redaction import looks_like_credential, redact_text

# event name -> (label on the page, Apprise notify type)
EVENTS: dict[str, tuple[str, str]] = {
    "grabbed": ("Request grabbed (release sent to the download client)", "info"),
    "available": ("Request available in Plex", "success"),
    "failed": ("Request failed", "failure"),
    "warn": ("Request needs attention (warn)", "warning"),
    "job_failed": ("A job failed after its last attempt", "failure"),
    "schedule_late": ("A schedule is late", "warning"),
    "integration_down": ("An integration is down", "failure"),
    "integration_up": ("An integration is back up", "success"),
}
TEST_EVENT = "test"  # the Test button's message: sent to one target whatever its events
MAX_URL_CHARS = 2000
_ALL = ("all", "*")


class TargetError(ValueError):
    """A notification URL or event list that cannot be used; the message says why (never the URL's tokens)."""


@dataclass(frozen=True)
class Target:
    """One place messages go: `key` is `db:<id>` (the notification_targets table) or `env:<digest>` (NOTIFY_URLS)."""
    key: str
    url: str
    events: tuple[str, ...]

    @property
    def source(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def display(self) -> str:
        return redacted_url(self.url)

    def wants(self, event: str) -> bool:
        return event == TEST_EVENT or event in self.events


def notify_type(event: str) -> str:
    return EVENTS[event][1] if event in EVENTS else "info"


def parse_events(raw: str | list | tuple) -> tuple[str, ...]:
    """Event names (a comma-separated text or a list) in EVENTS order; `all` / `*` for every event. None at all
    is a TargetError (a target that wants nothing is removed instead)."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    if not all(isinstance(item, str) for item in items):
        raise TargetError("events must be a list of event names")
    names = {item.strip().lower() for item in items if item.strip()}
    if names & set(_ALL):
        return tuple(EVENTS)
    unknown = sorted(names - set(EVENTS))
    if unknown:
        raise TargetError(f"unknown event(s) {', '.join(map(repr, unknown))}; known: {', '.join(EVENTS)} (or all)")
    if not names:
        raise TargetError(f"choose at least one event: {', '.join(EVENTS)} (or all)")
    return tuple(event for event in EVENTS if event in names)


def check_url(raw: str) -> str:
    """The URL stripped, or a TargetError: `scheme://…`, no spaces or control characters, at most MAX_URL_CHARS.
    Whether Apprise knows the scheme is asked by app/integrations/notifier.py (it imports every plugin)."""
    if not isinstance(raw, str):
        raise TargetError("the URL must be a string")
    url = raw.strip()
    if not url:
        raise TargetError("the URL is empty")
    if len(url) > MAX_URL_CHARS:
        raise TargetError(f"the URL is longer than {MAX_URL_CHARS} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise TargetError("the URL contains spaces or control characters")
    scheme, sep, rest = url.partition("://")
    if not sep or not rest or not scheme or not scheme[0].isalpha() or not all(
            ch.isalnum() or ch in "+.-" for ch in scheme):
        raise TargetError("not an Apprise URL: expected scheme://…, e.g. json://host/path, ntfys://ntfy.sh/topic, "
                          "discord://webhook_id/webhook_token")
    return url


def parse_notify_urls(raw: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """NOTIFY_URLS: entries separated by `;` or new lines, each `URL` (every event) or `URL|event,event`
    (the events after the last `|`). A bad entry is a TargetError naming its position, never its text."""
    entries: list[tuple[str, tuple[str, ...]]] = []
    parts = [part.strip() for line in raw.splitlines() for part in line.split(";")]
    for position, part in enumerate((p for p in parts if p), start=1):
        url, bar, events = part.rpartition("|")
        if not bar:
            url, events = part, "all"
        try:
            entries.append((check_url(url), parse_events(events)))
        except TargetError as exc:
            raise TargetError(f"entry {position}: {exc}") from None
    return tuple(entries)


def env_targets(entries: tuple[tuple[str, tuple[str, ...]], ...]) -> list[Target]:
    return [Target(env_key(url), url, events) for url, events in entries]


def env_key(url: str) -> str:
    """A stable key for a NOTIFY_URLS entry that does not reveal it (a job's payload names its target by key)."""
    return "env:" + hashlib.sha256(url.encode()).hexdigest()[:16]


def _is_host_name(host: str) -> bool:
    """A DNS name or address (kept visible), as opposed to a token written where a host would be."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return "." in host


# Schemes whose host is always a host (a LAN name without dots too); elsewhere a host without a dot is a token.
_HOST_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls", "mailto", "mailtos"})


def _host(hostport: str) -> str:
    if hostport.startswith("["):  # [IPv6]:port
        return hostport[:hostport.find("]") + 1]
    name, colon, port = hostport.rpartition(":")
    return name if colon and port.isdigit() else hostport  # `123456:ABC-DEF` (a bot token) is no host:port


def _token_like(part: str) -> bool:
    """A path segment or query value that is a key, not a word (`hook`, `my-alerts`): 20 characters or more, or
    8 or more mixing letters and digits."""
    return len(part) >= 20 or (len(part) >= 8 and any(c.isdigit() for c in part) and any(c.isalpha() for c in part))


def url_secrets(url: str) -> tuple[str, ...]:
    """The parts of `url` that may be secrets, as written and percent-decoded: the user and password, a host
    that is no host name (a bot token, a webhook id, a topic), path segments and query values that look like
    keys (`_token_like`, or a query name that says key, token, pass, secret). Redacting them leaves the URL's
    harmless rest readable (the scheme, a host name, a path word, a chat id)."""
    scheme, _, rest = url.partition("://")
    authority, _, tail = rest.partition("/")
    authority, _, query_in_authority = authority.partition("?")
    path, _, query = tail.partition("?")
    userinfo, at, hostport = authority.rpartition("@")
    user, _, password = userinfo.partition(":")
    # a user is secret when it stands alone (Pushover's user key) or looks like a key; a password always is
    parts: list[str] = [password] + ([user] if at and (not password or looks_like_credential(user)) else [])
    host = _host(hostport)
    if host and scheme.lower() not in _HOST_SCHEMES and not _is_host_name(host.lower()):
        parts += [hostport, host]
    parts += [segment for segment in path.split("/") if _token_like(unquote(segment))]
    for name, value in parse_qsl(query or query_in_authority):
        if _token_like(value) or any(word in name.lower() for word in ("key", "token", "pass", "secret")):
            parts.append(value)
    return tuple(dict.fromkeys(part for part in parts + [unquote(p) for p in parts] if len(part) >= 2))


def redacted_url(url: str) -> str:
    """`url` as pages, answers and events show it: every part `url_secrets` names replaced by [REDACTED]."""
    return redact_text(url, url_secrets(url))

"""Parsers of setting values: each takes the text of one variable and returns its value or raises ValueError
(app/config/loading.parse_values turns that into the variable's problem)."""
from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse


def parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def parse_positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")
    return value


def parse_port(raw: str) -> int:
    value = int(raw.strip())
    if not 1 <= value <= 65535:
        raise ValueError(f"must be a TCP port (1-65535), got {value}")
    return value


def parse_host(raw: str) -> str:
    value = raw.strip()
    if not value or any(ch.isspace() for ch in value) or "/" in value:
        raise ValueError(f"must be an address or host name to listen on, e.g. 127.0.0.1 or 0.0.0.0; got {raw!r}")
    return value


def parse_allowed_hosts(raw: str) -> tuple[str, ...]:
    """ALLOWED_HOSTS: comma-separated host names or addresses (`.example.org` also allows its subdomains;
    an IPv6 address in brackets), or `*` for any."""
    hosts = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    if "*" in hosts and len(hosts) > 1:
        raise ValueError("`*` (any host) cannot be combined with names")
    for host in hosts:
        if host != "*" and (any(ch.isspace() or ch in "/@?#" for ch in host) or host.count(":") == 1):
            raise ValueError(f"{host!r} is not a host name or address (no scheme, port or path; IPv6 in brackets)")
    return hosts


def parse_url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not value:
            return ""
        parsed = urlparse(value)
        if parsed.scheme not in schemes:
            raise ValueError(f"scheme must be one of {', '.join(schemes)}; got {value.split(':', 1)[0]!r}")
        return value.rstrip("/") if parsed.scheme.startswith("http") else value

    return parse


def parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {raw!r}")
        return value

    return parse


def parse_timezone(raw: str) -> str:
    from zoneinfo import ZoneInfo

    value = raw.strip() or "UTC"
    ZoneInfo(value)  # raises for unknown zones
    return value


def parse_template(raw: str) -> str:
    from app.library.paths import validate_template

    return validate_template(raw.strip())


def parse_per_indexer(number: Callable[[str], float]) -> Callable[[str], str]:
    """`Tracker A=1440,Tracker B=0`: each entry a name, `=`, and a number >= 0 (`number` parses it). The text is
    kept as written (Settings.seeding_limit_for reads it); a bad entry stops the start."""
    def parse(raw: str) -> str:
        for part in filter(str.strip, raw.split(",")):
            name, equals, value = part.partition("=")
            if not equals or not name.strip():
                raise ValueError(f"expected indexer=value entries separated by commas, got {part.strip()!r}")
            try:
                parsed = number(value.strip())
            except ValueError:
                raise ValueError(f"{name.strip()!r}: {value.strip()!r} is not a number") from None
            if not 0 <= parsed < float("inf"):  # also refuses nan
                raise ValueError(f"{name.strip()!r}: must be a number >= 0, got {value.strip()!r}")
        return raw.strip()

    return parse


def per_indexer_value(raw: str, indexer: str) -> str | None:
    """The value written for `indexer` (names compare case-insensitively), or None."""
    for part in raw.split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == indexer.strip().lower():
            return value.strip()
    return None


def parse_remote_path_mappings(raw: str) -> tuple:
    from app.library.remote_paths import parse_mappings

    return parse_mappings(raw)


def parse_plex_path_mappings(raw: str) -> tuple:
    from app.library.plex_paths import parse_plex_mappings

    return parse_plex_mappings(raw)


def parse_download_client_category(raw: str) -> str:
    from app.pipeline.torrent_placement import parse_category

    return parse_category(raw)


def parse_notify_urls(raw: str) -> tuple:
    from app.notifications.targets import parse_notify_urls

    return parse_notify_urls(raw)


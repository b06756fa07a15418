"""Typed settings, read once from the environment (and a `.env` file).

Every problem found is collected and raised together in one `SettingsError`, so a
misconfigured deployment fails loudly at start with the full list, not at the first job.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from app.pipeline.seeding import SeedingLimit

# Worker processes per worker group (a group serves one job type, or all maintenance types).
DEFAULT_WORKER_COUNTS: dict[str, int] = {
    "search_indexers": 3,
    "download_torrent": 3,
    "monitor_download": 5,
    "organize_files": 2,
    "scan_plex": 1,
    "plex_recently_added_check": 1,
    "maintenance": 1,
    "send_notification": 1,
}


WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]")  # HOST values that listen on every address


class SettingsError(ValueError):
    """One or more settings are invalid; the message lists each of them."""


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _parse_positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")
    return value


def _parse_port(raw: str) -> int:
    value = int(raw.strip())
    if not 1 <= value <= 65535:
        raise ValueError(f"must be a TCP port (1-65535), got {value}")
    return value


def _parse_host(raw: str) -> str:
    value = raw.strip()
    if not value or any(ch.isspace() for ch in value) or "/" in value:
        raise ValueError(f"must be an address or host name to listen on, e.g. 127.0.0.1 or 0.0.0.0; got {raw!r}")
    return value


def _parse_allowed_hosts(raw: str) -> tuple[str, ...]:
    """ALLOWED_HOSTS: comma-separated host names or addresses (`.example.org` also allows its subdomains;
    an IPv6 address in brackets), or `*` for any."""
    hosts = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    if "*" in hosts and len(hosts) > 1:
        raise ValueError("`*` (any host) cannot be combined with names")
    for host in hosts:
        if host != "*" and (any(ch.isspace() or ch in "/@?#" for ch in host) or host.count(":") == 1):
            raise ValueError(f"{host!r} is not a host name or address (no scheme, port or path; IPv6 in brackets)")
    return hosts


def _parse_url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not value:
            return ""
        parsed = urlparse(value)
        if parsed.scheme not in schemes:
            raise ValueError(f"scheme must be one of {', '.join(schemes)}; got {value.split(':', 1)[0]!r}")
        return value.rstrip("/") if parsed.scheme.startswith("http") else value

    return parse


def _parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {raw!r}")
        return value

    return parse


def _parse_timezone(raw: str) -> str:
    from zoneinfo import ZoneInfo

    value = raw.strip() or "UTC"
    ZoneInfo(value)  # raises for unknown zones
    return value


def _parse_template(raw: str) -> str:
    from app.library.paths import validate_template

    return validate_template(raw.strip())


def _parse_per_indexer(number: Callable[[str], float]) -> Callable[[str], str]:
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


def _per_indexer_value(raw: str, indexer: str) -> str | None:
    """The value written for `indexer` (names compare case-insensitively), or None."""
    for part in raw.split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == indexer.strip().lower():
            return value.strip()
    return None


def _parse_remote_path_mappings(raw: str) -> tuple:
    from app.library.remote_paths import parse_mappings

    return parse_mappings(raw)


def _parse_plex_path_mappings(raw: str) -> tuple:
    from app.library.plex_paths import parse_plex_mappings

    return parse_plex_mappings(raw)


def _parse_download_client_category(raw: str) -> str:
    from app.pipeline.torrent_placement import parse_category

    return parse_category(raw)


def _parse_notify_urls(raw: str) -> tuple:
    from app.notifications.targets import parse_notify_urls

    return parse_notify_urls(raw)


def _setting(env: str, default: Any, parse: Callable[[str], Any] = str, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "secret": secret})


@dataclass(frozen=True)
class Settings:
    instance_dir: Path = _setting("INSTANCE_DIR", Path("instance"), Path)
    database_url: str = _setting("DATABASE_URL", "", _parse_url(("sqlite", "postgresql", "postgres")), secret=True)
    redis_url: str = _setting("REDIS_URL", "redis://127.0.0.1:6379/0", _parse_url(("redis", "rediss", "unix")),
                              secret=True)
    secret_key: str = _setting("SECRET_KEY", "", secret=True)
    admin_username: str = _setting("ADMIN_USERNAME", "admin")
    admin_password: str = _setting("ADMIN_PASSWORD", "", secret=True)
    admin_api_token: str = _setting("ADMIN_API_TOKEN", "", secret=True)
    # Reverse proxies in front of the web app: their X-Forwarded-For/-Proto/-Host are believed (0: ignored).
    trusted_proxies: int = _setting("TRUSTED_PROXIES", 0, _parse_positive_int)
    session_cookie_secure: bool = _setting("SESSION_COOKIE_SECURE", False, _parse_bool)  # on for HTTPS sites
    session_lifetime_hours: int = _setting("SESSION_LIFETIME_HOURS", 24, _parse_positive_int)  # idle time
    # Host header values the web app answers, besides localhost and HOST (against DNS rebinding); * for any.
    allowed_hosts: tuple[str, ...] = _setting("ALLOWED_HOSTS", (), _parse_allowed_hosts)

    prowlarr_url: str = _setting("PROWLARR_URL", "", _parse_url(("http", "https")))
    prowlarr_api_key: str = _setting("PROWLARR_API_KEY", "", secret=True)
    download_client: str = _setting("DOWNLOAD_CLIENT", "qbittorrent", _parse_choice(("qbittorrent", "transmission")))
    download_client_url: str = _setting("DOWNLOAD_CLIENT_URL", "", _parse_url(("http", "https")))
    download_client_username: str = _setting("DOWNLOAD_CLIENT_USERNAME", "")
    download_client_password: str = _setting("DOWNLOAD_CLIENT_PASSWORD", "", secret=True)
    # the category every torrent goes into (app/pipeline/torrent_placement.py); its own save path wins
    download_client_category: str = _setting("DOWNLOAD_CLIENT_CATEGORY", "readmeabook",
                                             _parse_download_client_category)
    download_dir: str = _setting("DOWNLOAD_DIR", "")
    media_dir: str = _setting("MEDIA_DIR", "")
    plex_url: str = _setting("PLEX_URL", "", _parse_url(("http", "https")))
    plex_token: str = _setting("PLEX_TOKEN", "", secret=True)
    plex_library_id: str = _setting("PLEX_LIBRARY_ID", "")

    organize_mode: str = _setting("ORGANIZE_MODE", "copy", _parse_choice(("copy", "hardlink", "move")))
    organize_path_template: str = _setting("ORGANIZE_PATH_TEMPLATE", "{author}/{title}", _parse_template)
    # write title/album/author/narrator/cover into the library's copies (app/library/tags.py); never the torrent's
    tag_files: bool = _setting("TAG_FILES", True, _parse_bool)
    monitor_poll_seconds: float = _setting("MONITOR_POLL_SECONDS", 10.0, float)
    download_stall_limit_seconds: int = _setting("DOWNLOAD_STALL_LIMIT_SECONDS", 6 * 3600, _parse_positive_int)
    # per indexer, `Tracker A=1440,Tracker B=0`: a finished torrent seeds this long, and to this ratio (both, when
    # both are set; 0 or unlisted: no such limit), before cleanup_seeded_torrents removes it with its files
    indexer_seeding_minutes: str = _setting("INDEXER_SEEDING_MINUTES", "", _parse_per_indexer(int))
    indexer_seeding_ratio: str = _setting("INDEXER_SEEDING_RATIO", "", _parse_per_indexer(float))
    # client path = local path pairs (app/library/remote_paths.py), for a client that sees other folders
    remote_path_mappings: tuple = _setting("REMOTE_PATH_MAPPINGS", (), _parse_remote_path_mappings)
    # local path = Plex path pairs (app/library/plex_paths.py), for a Plex that sees the library elsewhere
    plex_path_mappings: tuple = _setting("PLEX_PATH_MAPPINGS", (), _parse_plex_path_mappings)
    # after an import refreshes the book's folder in Plex, the Recently Added Check runs this much later
    plex_refresh_check_delay_seconds: int = _setting("PLEX_REFRESH_CHECK_DELAY_SECONDS", 60, _parse_positive_int)

    # Apprise URLs and their events, `json://host/path|grabbed,failed;ntfys://ntfy.sh/topic` (app/notifications/)
    notify_urls: tuple = _setting("NOTIFY_URLS", (), _parse_notify_urls, secret=True)

    # Job system tuning (see README "Design notes" for why these values).
    worker_class: str = _setting("WORKER_CLASS", "simple", _parse_choice(("simple", "fork")))
    # python -m workers: how long Redis and PostgreSQL may stay unreachable at start before it gives up.
    worker_startup_wait_seconds: int = _setting("WORKER_STARTUP_WAIT_SECONDS", 60, _parse_positive_int)
    worker_ttl: int = _setting("WORKER_TTL", 30, _parse_positive_int)
    worker_maintenance_interval: int = _setting("WORKER_MAINTENANCE_INTERVAL", 10, _parse_positive_int)
    worker_synchronous_commit: bool = _setting("WORKER_SYNCHRONOUS_COMMIT", False, _parse_bool)
    job_heartbeat_ttl: int = _setting("JOB_HEARTBEAT_TTL", 30, _parse_positive_int)
    job_max_attempts: int = _setting("JOB_MAX_ATTEMPTS", 3, _parse_positive_int)
    job_backoff_seconds: int = _setting("JOB_BACKOFF_SECONDS", 2, _parse_positive_int)
    redis_keep_completed: int = _setting("REDIS_KEEP_COMPLETED", 100, _parse_positive_int)
    redis_keep_failed: int = _setting("REDIS_KEEP_FAILED", 200, _parse_positive_int)
    job_history_days: int = _setting("JOB_HISTORY_DAYS", 30, _parse_positive_int)
    scheduler_timezone: str = _setting("SCHEDULER_TIMEZONE", "UTC", _parse_timezone)
    log_level: str = _setting("LOG_LEVEL", "INFO", _parse_choice(("debug", "info", "warning", "error")))
    # One line per record: `key=value` pairs, or one JSON object (app/logging_setup.py).
    log_format: str = _setting("LOG_FORMAT", "keyvalue", _parse_choice(("keyvalue", "json")))
    # The web server (gunicorn with waitress workers, app/gunicorn_conf.py): address, processes, threads per
    # process, how long a stop (SIGTERM) waits for requests in flight, how long a connection may stay silent
    # and how many may be open per process (app/waitress_worker.py).
    host: str = _setting("HOST", "127.0.0.1", _parse_host)
    port: int = _setting("PORT", 5000, _parse_port)
    web_workers: int = _setting("WEB_WORKERS", 1, _parse_positive_int)
    web_threads: int = _setting("WEB_THREADS", 4, _parse_positive_int)
    web_graceful_timeout: int = _setting("WEB_GRACEFUL_TIMEOUT", 10, _parse_positive_int)
    web_client_timeout: int = _setting("WEB_CLIENT_TIMEOUT", 30, _parse_positive_int)
    web_max_connections: int = _setting("WEB_MAX_CONNECTIONS", 1000, _parse_positive_int)
    # Largest request body in bytes; a larger one is answered 413 before it is read.
    max_content_length: int = _setting("MAX_CONTENT_LENGTH", 1024 * 1024, _parse_positive_int)
    worker_counts: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WORKER_COUNTS))
    # The text of each admin-changeable setting (ADMIN_SETTING_NAMES) that the environment or .env set: those
    # win over the database and are read-only on /admin/settings (app/settings_store.py).
    environment: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def sqlite_default_url(self) -> str:
        return f"sqlite:///{(self.instance_dir / 'readmeabook.db').resolve()}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or self.sqlite_default_url

    def seeding_minutes_for(self, indexer: str) -> int:
        """INDEXER_SEEDING_MINUTES='Tracker A=1440,Tracker B=0' (0 = no time limit; unknown indexers: none)."""
        return int(_per_indexer_value(self.indexer_seeding_minutes, indexer) or 0)

    def seeding_ratio_for(self, indexer: str) -> float:
        """INDEXER_SEEDING_RATIO='Tracker A=1.0,Tracker B=0' (0 = no ratio limit; unknown indexers: none)."""
        return float(_per_indexer_value(self.indexer_seeding_ratio, indexer) or 0)

    def seeding_limit_for(self, indexer: str | None) -> SeedingLimit:
        """The indexer's seeding goal (both settings; neither set: seed forever)."""
        return SeedingLimit(self.seeding_minutes_for(indexer or ""), self.seeding_ratio_for(indexer or ""))

    @property
    def trusted_hosts(self) -> list[str] | None:
        """Flask's TRUSTED_HOSTS: the loopback names, HOST when it is one address, and ALLOWED_HOSTS; None
        (no check) for ALLOWED_HOSTS=*. A Host header naming none of them is refused with a 400, so a web
        page whose name an attacker points at this server (DNS rebinding) cannot talk to the app."""
        if self.allowed_hosts == ("*",):
            return None
        hosts = ["localhost", "127.0.0.1", "[::1]"]
        if self.host not in WILDCARD_HOSTS:
            hosts.append(f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host)
        return list(dict.fromkeys([*hosts, *self.allowed_hosts]))

    @property
    def plex_configured(self) -> bool:
        return bool(self.plex_url and self.plex_token and self.plex_library_id)

    @cached_property
    def _secret_values(self) -> tuple[str, ...]:
        return tuple(self._collect_secret_values())

    def secret_values(self) -> tuple[str, ...]:
        """Configured secret values, for redaction (by value) of logs, events and stored payloads.

        Every non-empty secret setting counts, however short: app/redaction/ decides how a short value
        is matched (as a whole token, never inside a word). A URL setting also gives its password, as
        written and decoded (`p%40ss` and `p@ss`); a local URL without one (sqlite, redis://127…) is no secret.
        """
        return self._secret_values

    def _collect_secret_values(self) -> list[str]:
        from urllib.parse import unquote

        values: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if not (f.metadata.get("secret") and isinstance(value, str) and value):
                continue
            password = urlparse(value).password if "://" in value else None
            if password:  # as written and percent-decoded (p%40ss, p@ss)
                values += dict.fromkeys((password, unquote(password)))
            if not value.startswith(("sqlite", "redis://127")):
                values.append(value)
        from app.notifications.targets import url_secrets

        for url, _events in self.notify_urls:  # their tokens, wherever they appear (the whole URL included)
            values += [url, *url_secrets(url)]
        return values


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


# What an admin may change on /admin/settings and PUT /api/admin/settings (stored in the database; a value
# the environment sets wins). Process-level settings (database, Redis, ports, workers, keys) stay environment-only.
ADMIN_SETTING_NAMES: tuple[str, ...] = (
    "PROWLARR_URL", "PROWLARR_API_KEY", "INDEXER_SEEDING_MINUTES", "INDEXER_SEEDING_RATIO",
    "DOWNLOAD_CLIENT", "DOWNLOAD_CLIENT_URL", "DOWNLOAD_CLIENT_USERNAME", "DOWNLOAD_CLIENT_PASSWORD",
    "DOWNLOAD_CLIENT_CATEGORY", "MONITOR_POLL_SECONDS", "DOWNLOAD_STALL_LIMIT_SECONDS",
    "DOWNLOAD_DIR", "MEDIA_DIR", "ORGANIZE_MODE", "ORGANIZE_PATH_TEMPLATE", "REMOTE_PATH_MAPPINGS", "TAG_FILES",
    "PLEX_URL", "PLEX_TOKEN", "PLEX_LIBRARY_ID", "PLEX_PATH_MAPPINGS",
)


def setting_field(env: str) -> Any:
    """The Settings field read from environment variable `env` (KeyError for an unknown name)."""
    for f in fields(Settings):
        if f.metadata.get("env") == env:
            return f
    raise KeyError(env)


def is_secret(env: str) -> bool:
    return bool(setting_field(env).metadata.get("secret"))


def parse_values(source: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse every setting `source` names: (field values, {variable name: problem}). The one parser of
    settings: at start (load_settings) and for an admin's change (app/settings_store.py)."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for f in fields(Settings):
        env = f.metadata.get("env")
        if env is None or env not in source:
            continue
        try:
            values[f.name] = f.metadata["parse"](source[env])
        except (ValueError, TypeError, KeyError, Exception) as exc:  # ZoneInfo raises its own errors
            problems[env] = str(exc) or type(exc).__name__
    return values, problems


def combination_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """Rules across settings, over parsed field values (missing ones take their defaults): {name: problem}."""
    problems = {}
    if values.get("job_max_attempts", 3) < 1:
        problems["JOB_MAX_ATTEMPTS"] = "JOB_MAX_ATTEMPTS must be at least 1"
    if values.get("job_heartbeat_ttl", 30) < 5:
        problems["JOB_HEARTBEAT_TTL"] = "JOB_HEARTBEAT_TTL must be at least 5 seconds"
    if values.get("web_workers", 1) < 1 or values.get("web_threads", 1) < 1:
        problems["WEB_WORKERS"] = "WEB_WORKERS and WEB_THREADS must be at least 1"
    if values.get("web_client_timeout", 30) < 1 or values.get("web_max_connections", 1000) < 1:
        problems["WEB_CLIENT_TIMEOUT"] = "WEB_CLIENT_TIMEOUT and WEB_MAX_CONNECTIONS must be at least 1"
    if values.get("session_lifetime_hours", 24) < 1:
        problems["SESSION_LIFETIME_HOURS"] = "SESSION_LIFETIME_HOURS must be at least 1"
    if values.get("max_content_length", 1024) < 1024:
        problems["MAX_CONTENT_LENGTH"] = "MAX_CONTENT_LENGTH must be at least 1024 bytes (the login form must fit)"
    if values.get("organize_mode") == "move" and not values.get("download_dir", "").strip():
        # move deletes what it imports: only files confined to DOWNLOAD_DIR may be deleted
        problems["ORGANIZE_MODE"] = ("ORGANIZE_MODE=move requires DOWNLOAD_DIR (the import deletes the files it "
                                     "moves, and only files under DOWNLOAD_DIR may be read or deleted)")
    return problems


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | os.PathLike | None = ".env") -> Settings:
    """Build Settings from `environ` (default: os.environ) over the `.env` file.

    Real environment variables win over the file. Raises SettingsError listing every bad value.
    """
    source: dict[str, str] = {}
    if env_file is not None:
        source.update(_read_dotenv(Path(env_file)))
    source.update(os.environ if environ is None else environ)

    values, parse_problems = parse_values(source)
    problems = [f"{env}={'<hidden>' if is_secret(env) else repr(source[env])}: {problem}"
                for env, problem in parse_problems.items()]

    counts = dict(DEFAULT_WORKER_COUNTS)
    for group in DEFAULT_WORKER_COUNTS:
        env = f"WORKERS_{group.upper()}"
        if env in source:
            try:
                counts[group] = _parse_positive_int(source[env])
            except ValueError as exc:
                problems.append(f"{env}={source[env]!r}: {exc}")
    values["worker_counts"] = counts
    values["environment"] = {name: source[name] for name in ADMIN_SETTING_NAMES if name in source}

    problems += combination_problems(values).values()
    if problems:
        raise SettingsError("Invalid configuration:\n  - " + "\n  - ".join(problems))
    return Settings(**values)


_current: Settings | None = None  # _base with the database's stored values applied (with_stored)
_base: Settings | None = None     # what the environment (and .env) says
_stored_version: int | None = None  # the settings version _current was built from (None: not read yet)
_bound: ContextVar[Settings | None] = ContextVar("rmab_bound_settings", default=None)


def get_settings() -> Settings:
    """The settings in force here: those bound to the running job (bound_settings), else the process-wide
    ones (loaded on first use; app/settings_store.refresh_settings applies the database's)."""
    bound = _bound.get()
    if bound is not None:
        return bound
    global _current, _base
    if _current is None:
        _current = _base = load_settings()
        _log_settings_warnings(_current)
    return _current


def base_settings() -> Settings:
    """The environment's settings, without the database's values."""
    get_settings()
    return _base or get_settings()


def with_stored(base: Settings, stored: Mapping[str, str]) -> Settings:
    """`base` with the admin's stored values of ADMIN_SETTING_NAMES applied, except those the environment sets
    (defaults < database < environment). A stored value that no longer parses, or breaks a rule across
    settings, is left out with a warning (it was valid when saved; a later release may be stricter)."""
    import logging

    wanted = {name: value for name, value in stored.items()
              if name in ADMIN_SETTING_NAMES and name not in base.environment}
    values, problems = parse_values(wanted)
    merged = {**{f.name: getattr(base, f.name) for f in fields(Settings)}, **values}
    problems.update({name: problem for name, problem in combination_problems(merged).items() if name in wanted})
    for name, problem in problems.items():
        logging.getLogger("app.config").warning("stored setting %s is not used: %s", name, problem)
        values.pop(setting_field(name).name, None)
    return replace(base, **values) if values else base


def stored_version() -> int | None:
    return _stored_version


def use_stored(stored: Mapping[str, str], version: int) -> Settings:
    """Make the process-wide settings the environment's with `stored` (settings version `version`) applied."""
    global _current, _stored_version
    _current = with_stored(base_settings(), stored)
    _stored_version = version
    return _current


@contextmanager
def bound_settings(settings: Settings) -> Iterator[Settings]:
    """Within the block, get_settings() in this thread answers `settings`: a job keeps the settings it started
    with while the process applies a newer version."""
    token = _bound.set(settings)
    try:
        yield settings
    finally:
        _bound.reset(token)


def settings_warnings(settings: Settings) -> list[str]:
    """Suspicious but allowed values: logged once when the process loads its settings, never fatal."""
    from app.library.remote_paths import missing_local_dirs

    warnings = missing_local_dirs(settings.remote_path_mappings) + missing_local_dirs(settings.plex_path_mappings)
    if settings.host in WILDCARD_HOSTS and not settings.allowed_hosts:
        warnings.append(f"HOST={settings.host} without ALLOWED_HOSTS: only localhost names are accepted in the "
                        "Host header; set ALLOWED_HOSTS to the names and addresses users type (e.g. "
                        "ALLOWED_HOSTS=nas.lan,192.168.1.10), or to the proxy's public name behind a reverse proxy")
    return warnings


def _log_settings_warnings(settings: Settings) -> None:
    import logging

    for warning in settings_warnings(settings):
        logging.getLogger("app.config").warning(warning)


def set_settings(settings: Settings | None) -> None:
    """Replace the process-wide settings (tests, and create_app(settings=...)); the database's stored values
    are applied over them again at the next refresh."""
    global _current, _base, _stored_version
    _current = _base = settings
    _stored_version = None

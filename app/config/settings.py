"""The Settings dataclass: every setting, the variable it is read from, its default, parser and secrecy."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from app.config.parsers import (
    parse_allowed_hosts,
    parse_bool,
    parse_choice,
    parse_download_client_category,
    parse_host,
    parse_notify_urls,
    parse_per_indexer,
    parse_plex_path_mappings,
    parse_port,
    parse_positive_int,
    parse_remote_path_mappings,
    parse_template,
    parse_timezone,
    parse_url,
    per_indexer_value,
)
from app.jobs.types import default_worker_counts
from app.pipeline.seeding import SeedingLimit

WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]")  # HOST values that listen on every address


def _setting(env: str, default: Any, parse: Callable[[str], Any] = str, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "secret": secret})


@dataclass(frozen=True)
class Settings:
    instance_dir: Path = _setting("INSTANCE_DIR", Path("instance"), Path)
    database_url: str = _setting("DATABASE_URL", "", parse_url(("sqlite", "postgresql", "postgres")), secret=True)
    redis_url: str = _setting("REDIS_URL", "redis://127.0.0.1:6379/0", parse_url(("redis", "rediss", "unix")),
                              secret=True)
    secret_key: str = _setting("SECRET_KEY", "", secret=True)
    admin_username: str = _setting("ADMIN_USERNAME", "admin")
    admin_password: str = _setting("ADMIN_PASSWORD", "", secret=True)
    admin_api_token: str = _setting("ADMIN_API_TOKEN", "", secret=True)
    # Reverse proxies in front of the web app: their X-Forwarded-For/-Proto/-Host are believed (0: ignored).
    trusted_proxies: int = _setting("TRUSTED_PROXIES", 0, parse_positive_int)
    session_cookie_secure: bool = _setting("SESSION_COOKIE_SECURE", False, parse_bool)  # on for HTTPS sites
    session_lifetime_hours: int = _setting("SESSION_LIFETIME_HOURS", 24, parse_positive_int)  # idle time
    # Host header values the web app answers, besides localhost and HOST (against DNS rebinding); * for any.
    allowed_hosts: tuple[str, ...] = _setting("ALLOWED_HOSTS", (), parse_allowed_hosts)

    prowlarr_url: str = _setting("PROWLARR_URL", "", parse_url(("http", "https")))
    prowlarr_api_key: str = _setting("PROWLARR_API_KEY", "", secret=True)
    download_client: str = _setting("DOWNLOAD_CLIENT", "qbittorrent", parse_choice(("qbittorrent", "transmission")))
    download_client_url: str = _setting("DOWNLOAD_CLIENT_URL", "", parse_url(("http", "https")))
    download_client_username: str = _setting("DOWNLOAD_CLIENT_USERNAME", "")
    download_client_password: str = _setting("DOWNLOAD_CLIENT_PASSWORD", "", secret=True)
    # the category every torrent goes into (app/pipeline/torrent_placement.py); its own save path wins
    download_client_category: str = _setting("DOWNLOAD_CLIENT_CATEGORY", "readmeabook",
                                             parse_download_client_category)
    download_dir: str = _setting("DOWNLOAD_DIR", "")
    media_dir: str = _setting("MEDIA_DIR", "")
    plex_url: str = _setting("PLEX_URL", "", parse_url(("http", "https")))
    plex_token: str = _setting("PLEX_TOKEN", "", secret=True)
    plex_library_id: str = _setting("PLEX_LIBRARY_ID", "")

    organize_mode: str = _setting("ORGANIZE_MODE", "copy", parse_choice(("copy", "hardlink", "move")))
    organize_path_template: str = _setting("ORGANIZE_PATH_TEMPLATE", "{author}/{title}", parse_template)
    # write title/album/author/narrator/cover into the library's copies (app/library/tags.py); never the torrent's
    tag_files: bool = _setting("TAG_FILES", True, parse_bool)
    monitor_poll_seconds: float = _setting("MONITOR_POLL_SECONDS", 10.0, float)
    download_stall_limit_seconds: int = _setting("DOWNLOAD_STALL_LIMIT_SECONDS", 6 * 3600, parse_positive_int)
    # per indexer, `Tracker A=1440,Tracker B=0`: a finished torrent seeds this long, and to this ratio (both, when
    # both are set; 0 or unlisted: no such limit), before cleanup_seeded_torrents removes it with its files
    indexer_seeding_minutes: str = _setting("INDEXER_SEEDING_MINUTES", "", parse_per_indexer(int))
    indexer_seeding_ratio: str = _setting("INDEXER_SEEDING_RATIO", "", parse_per_indexer(float))
    # client path = local path pairs (app/library/remote_paths.py), for a client that sees other folders
    remote_path_mappings: tuple = _setting("REMOTE_PATH_MAPPINGS", (), parse_remote_path_mappings)
    # local path = Plex path pairs (app/library/plex_paths.py), for a Plex that sees the library elsewhere
    plex_path_mappings: tuple = _setting("PLEX_PATH_MAPPINGS", (), parse_plex_path_mappings)
    # after an import refreshes the book's folder in Plex, the Recently Added Check runs this much later
    plex_refresh_check_delay_seconds: int = _setting("PLEX_REFRESH_CHECK_DELAY_SECONDS", 60, parse_positive_int)

    # Apprise URLs and their events, `json://host/path|grabbed,failed;ntfys://ntfy.sh/topic` (app/notifications/)
    notify_urls: tuple = _setting("NOTIFY_URLS", (), parse_notify_urls, secret=True)

    # Job system tuning (see README "Design notes" for why these values).
    worker_class: str = _setting("WORKER_CLASS", "simple", parse_choice(("simple", "fork")))
    # python -m workers: how long Redis and PostgreSQL may stay unreachable at start before it gives up.
    worker_startup_wait_seconds: int = _setting("WORKER_STARTUP_WAIT_SECONDS", 60, parse_positive_int)
    worker_ttl: int = _setting("WORKER_TTL", 30, parse_positive_int)
    worker_maintenance_interval: int = _setting("WORKER_MAINTENANCE_INTERVAL", 10, parse_positive_int)
    worker_synchronous_commit: bool = _setting("WORKER_SYNCHRONOUS_COMMIT", False, parse_bool)
    job_heartbeat_ttl: int = _setting("JOB_HEARTBEAT_TTL", 30, parse_positive_int)
    job_max_attempts: int = _setting("JOB_MAX_ATTEMPTS", 3, parse_positive_int)
    job_backoff_seconds: int = _setting("JOB_BACKOFF_SECONDS", 2, parse_positive_int)
    redis_keep_completed: int = _setting("REDIS_KEEP_COMPLETED", 100, parse_positive_int)
    redis_keep_failed: int = _setting("REDIS_KEEP_FAILED", 200, parse_positive_int)
    job_history_days: int = _setting("JOB_HISTORY_DAYS", 30, parse_positive_int)
    scheduler_timezone: str = _setting("SCHEDULER_TIMEZONE", "UTC", parse_timezone)
    log_level: str = _setting("LOG_LEVEL", "INFO", parse_choice(("debug", "info", "warning", "error")))
    # One line per record: `key=value` pairs, or one JSON object (app/logging_setup.py).
    log_format: str = _setting("LOG_FORMAT", "keyvalue", parse_choice(("keyvalue", "json")))
    # The web server (gunicorn with waitress workers, app/gunicorn_conf.py): address, processes, threads per
    # process, how long a stop (SIGTERM) waits for requests in flight, how long a connection may stay silent
    # and how many may be open per process (app/waitress_worker.py).
    host: str = _setting("HOST", "127.0.0.1", parse_host)
    port: int = _setting("PORT", 5000, parse_port)
    web_workers: int = _setting("WEB_WORKERS", 1, parse_positive_int)
    web_threads: int = _setting("WEB_THREADS", 4, parse_positive_int)
    web_graceful_timeout: int = _setting("WEB_GRACEFUL_TIMEOUT", 10, parse_positive_int)
    web_client_timeout: int = _setting("WEB_CLIENT_TIMEOUT", 30, parse_positive_int)
    web_max_connections: int = _setting("WEB_MAX_CONNECTIONS", 1000, parse_positive_int)
    # Largest request body in bytes; a larger one is answered 413 before it is read.
    max_content_length: int = _setting("MAX_CONTENT_LENGTH", 1024 * 1024, parse_positive_int)
    worker_counts: dict[str, int] = field(default_factory=default_worker_counts)
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
        return int(per_indexer_value(self.indexer_seeding_minutes, indexer) or 0)

    def seeding_ratio_for(self, indexer: str) -> float:
        """INDEXER_SEEDING_RATIO='Tracker A=1.0,Tracker B=0' (0 = no ratio limit; unknown indexers: none)."""
        return float(per_indexer_value(self.indexer_seeding_ratio, indexer) or 0)

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

        Every non-empty secret setting counts, however short: app/jobs/redact.py decides how a short value
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


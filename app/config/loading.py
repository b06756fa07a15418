"""Reading the settings at start: the environment over a `.env` file, every value parsed, every problem
collected into one SettingsError; the rules across settings; the warnings a start logs."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from app.config.parsers import parse_positive_int
from app.config.settings import ADMIN_SETTING_NAMES, WILDCARD_HOSTS, Settings, is_secret
from app.jobs import types


class SettingsError(ValueError):
    """One or more settings are invalid; the message lists each of them."""


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


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

    counts = {}
    for group in types.worker_groups():  # every declared group, a test's own included: WORKERS_<GROUP> or its size
        counts[group.name] = group.size
        if group.env in source:
            try:
                counts[group.name] = parse_positive_int(source[group.env])
            except ValueError as exc:
                problems.append(f"{group.env}={source[group.env]!r}: {exc}")
    values["worker_counts"] = counts
    values["environment"] = {name: source[name] for name in ADMIN_SETTING_NAMES if name in source}

    problems += combination_problems(values).values()
    if problems:
        raise SettingsError("Invalid configuration:\n  - " + "\n  - ".join(problems))
    return Settings(**values)

def settings_warnings(settings: Settings) -> list[str]:
    """Suspicious but allowed values: logged once when the process loads its settings, never fatal."""
    from app.library.remote_paths import missing_local_dirs

    warnings = missing_local_dirs(settings.remote_path_mappings) + missing_local_dirs(settings.plex_path_mappings)
    if settings.host in WILDCARD_HOSTS and not settings.allowed_hosts:
        warnings.append(f"HOST={settings.host} without ALLOWED_HOSTS: only localhost names are accepted in the "
                        "Host header; set ALLOWED_HOSTS to the names and addresses users type (e.g. "
                        "ALLOWED_HOSTS=nas.lan,192.168.1.10), or to the proxy's public name behind a reverse proxy")
    return warnings

"""Settings an admin changes in the browser or the API, stored in the database (migration 13).

- The one writer of the `settings`, `settings_state` and `settings_changes` tables. A save is one
  transaction (every value, one history row per name, the version + 1), so nothing is ever half-saved.
- Effective settings: defaults < database < environment (app/config.with_stored). A name the environment
  sets is read-only here (`EnvironmentSetsIt`, 409 in the API).
- Live reload: every process calls refresh_settings() (web: before a request; scheduler: each tick;
  workers: before each job, whose settings then stay bound for its whole run), which reads the version row
  at most once a second; the values only when the version moved. A save also announces its version in
  Redis (VERSION_KEY), which workers compare before each job (no SQL per job): the next job sees the save.
- What may be saved, and how the page describes each setting, is app/settings_rules.py's (no I/O but the
  folder check).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import peewee
from redis.exceptions import RedisError

from app import config
from app.config import Settings, is_secret
from app.errors import AppError
from app.settings_rules import folder_problem as folder_problem  # re-exported: tests ask it here
from app.settings_rules import normalize, validate

log = logging.getLogger(__name__)
REFRESH_SECONDS = 1.0  # a process looks at the settings version at most this often
VERSION_KEY = "rmab:settings:version"  # the last saved version, announced to the workers (a mirror)
STATE_ID = 1


class SettingsInvalid(AppError):
    """Bad values: `errors` maps each name to its message; nothing was saved."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("settings not saved: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), 400,
                         errors=errors)
        self.errors = errors


class EnvironmentSetsIt(AppError):
    """A change to names the environment sets (they win over the database): 409, nothing saved."""

    def __init__(self, names: list[str]):
        super().__init__(f"set by the environment (change it there): {', '.join(names)}", 409,
                         errors={name: "set by the environment; change it there" for name in names})


@dataclass(frozen=True)
class Snapshot:
    """What a process last read from the database: the version, the stored values, the setup flag."""

    version: int = -1
    values: dict[str, str] = field(default_factory=dict)
    setup_finished: bool = False


_snapshot = Snapshot()
_checked_at = 0.0
_lock = threading.Lock()


# --- reading ---------------------------------------------------------------------------------------------

def _read_state() -> tuple[int, bool]:
    from app.models import SettingsState

    row = SettingsState.get_or_none(SettingsState.id == STATE_ID)
    return (row.version, row.setup_finished_at is not None) if row is not None else (0, False)


def read_stored() -> dict[str, str]:
    from app.models import StoredSetting

    return {row.key: row.value for row in StoredSetting.select()}


def snapshot() -> Snapshot:
    return _snapshot


def refresh_settings(force: bool = False, connection: Any = None) -> Settings:
    """Apply the database's settings to this process when their version moved; returns the process-wide
    settings. The version row is read at most once per REFRESH_SECONDS (unless `force`); a worker passes its
    Redis `connection`, whose VERSION_KEY (set by each save) is compared before each job, so the next job
    sees a save at once. A database that cannot be read keeps the settings in force (logged at debug: the
    process's other duties report the outage)."""
    global _snapshot, _checked_at
    from app.db import database

    if database.obj is None:
        return config.get_settings()
    if connection is not None and not force:
        announced = _announced_version(connection)
        # only a newer one: a Redis that kept a version from before a database restore must not cost a read per job
        force = announced is not None and announced > _snapshot.version
    with _lock:
        now = time.monotonic()
        stale = config.stored_version() is None or config.stored_version() != _snapshot.version
        if not force and not stale and now - _checked_at < REFRESH_SECONDS:
            return config.get_settings()
        _checked_at = now
        try:
            version, finished = _read_state()
            if version != _snapshot.version or stale:
                _snapshot = Snapshot(version, read_stored(), finished)
            elif finished != _snapshot.setup_finished:
                _snapshot = Snapshot(version, _snapshot.values, finished)
        except (peewee.DatabaseError, peewee.InterfaceError) as exc:
            log.debug("settings not refreshed (%s)", type(exc).__name__)
            return config.get_settings()
        if config.stored_version() != _snapshot.version:
            config.use_stored(_snapshot.values, _snapshot.version)
        return config.get_settings()


def _announced_version(connection: Any) -> int | None:
    """The version the last save announced in Redis (None: unknown, e.g. Redis was flushed or is down)."""
    try:
        raw = connection.get(VERSION_KEY)
        return int(raw) if raw is not None else None
    except (RedisError, OSError, ValueError):
        return None


def _announce(version: int) -> None:
    """Tell the workers (before their next job) that the settings moved; the database stays the truth, so a
    Redis that is down only delays them to their once-a-second look."""
    from app.jobs.queues import get_redis

    try:
        get_redis().set(VERSION_KEY, version)
    except (RedisError, OSError) as exc:
        log.warning("settings saved; Redis did not take the version (%s): workers apply it within a second",
                    type(exc).__name__)


# --- writing ---------------------------------------------------------------------------------------------

def shown_value(name: str, text: str | None) -> str:
    """A change as the history shows it: never a secret's value."""
    from app.jobs.redact import redact_text

    if is_secret(name):
        return "(secret removed)" if text is None else "(secret set)"
    return "(back to default)" if text is None else redact_text(text)


def save(changes: Mapping[str, Any], changed_by: str, base: Settings | None = None) -> list[str]:
    """Validate and store an admin's changes in one transaction (all or nothing), with a history row per
    name and the version + 1; returns the names changed. Raises SettingsInvalid or EnvironmentSetsIt."""
    from app.db import database
    from app.models import SettingsChange, StoredSetting, utcnow

    base = base or config.base_settings()
    texts, problems = normalize(changes)
    set_by_environment = [name for name in texts if name in base.environment]
    if set_by_environment:
        raise EnvironmentSetsIt(set_by_environment)
    with database.obj.atomic():
        stored = read_stored()
        problems.update(validate(base, stored, texts))
        if problems:
            raise SettingsInvalid(problems)
        changed = [name for name, text in texts.items() if stored.get(name) != text]
        if not changed:
            return []
        now = utcnow()
        for name in changed:
            text = texts[name]
            if text is None:
                StoredSetting.delete().where(StoredSetting.key == name).execute()
            else:
                (StoredSetting.insert(key=name, value=text, updated_at=now, updated_by=changed_by)
                 .on_conflict(conflict_target=[StoredSetting.key],
                              update={StoredSetting.value: text, StoredSetting.updated_at: now,
                                      StoredSetting.updated_by: changed_by}).execute())
            SettingsChange.create(changed_by=changed_by, name=name, shown=shown_value(name, text), created_at=now)
        _bump_version()
    log.info("settings changed by %s: %s", changed_by,
             ", ".join(f"{name}={shown_value(name, texts[name])}" for name in changed))
    refresh_settings(force=True)
    _announce(_snapshot.version)
    return changed


def _bump_version(**state: Any) -> None:
    from app.models import SettingsState

    (SettingsState.insert(id=STATE_ID, version=1, **state)
     .on_conflict(conflict_target=[SettingsState.id],
                  update={SettingsState.version: SettingsState.version + 1, **{
                      getattr(SettingsState, k): v for k, v in state.items()}}).execute())


def recent_changes(limit: int = 20) -> list[Any]:
    from app.models import SettingsChange

    return list(SettingsChange.select().order_by(SettingsChange.created_at.desc(), SettingsChange.id).limit(limit))


# --- first-run setup -------------------------------------------------------------------------------------

def finish_setup(finished_by: str) -> None:
    from app.models import utcnow

    _bump_version(setup_finished_at=utcnow(), setup_finished_by=finished_by)
    log.info("first-run setup finished by %s", finished_by)
    refresh_settings(force=True)
    _announce(_snapshot.version)


def needs_setup(base: Settings) -> bool:
    """The first-run wizard applies: setup not finished, and not an install configured from before (an
    ADMIN_PASSWORD, or an integration set in the environment, means someone set it up already)."""
    if _snapshot.setup_finished or base.admin_password:
        return False
    return not any(name in base.environment for name in ("PROWLARR_URL", "DOWNLOAD_CLIENT_URL", "PLEX_URL"))

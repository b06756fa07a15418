"""The default schedules, created on first start when missing (never duplicated, never overwritten).

The two Plex schedules follow the configuration: created disabled while Plex is not configured, and
enabled at a later start (scheduler start, init-db) once it is, unless an admin changed `enabled` by hand
(`enabled_changed_by = "admin"`, written by app/schedules/service.py).
"""
from __future__ import annotations

import logging
from datetime import datetime

from app.config import Settings
from app.jobs.types import JobKind
from app.models import ScheduledJob, utcnow
from app.schedules.cron import next_fire_time

log = logging.getLogger(__name__)
SYSTEM = "system"
ADMIN = "admin"

# (name, job type, cron, needs Plex)
DEFAULT_SCHEDULES: list[tuple[str, JobKind, str, bool]] = [
    ("Library Scan", JobKind.SCAN_PLEX, "0 */6 * * *", True),
    ("Recently Added Check", JobKind.PLEX_RECENTLY_ADDED_CHECK, "*/5 * * * *", True),
    # every 5 min, searching only the requests whose back-off is over (app/pipeline/search_backoff.py);
    # migration 10 moved rows still on the old daily default "0 0 * * *"
    ("Retry Missing Torrents", JobKind.RETRY_MISSING_TORRENTS, "*/5 * * * *", False),
    ("Retry Failed Imports", JobKind.RETRY_FAILED_IMPORTS, "0 */6 * * *", False),
    ("Cleanup Seeded Torrents", JobKind.CLEANUP_SEEDED_TORRENTS, "*/30 * * * *", False),
    ("Job History Cleanup", JobKind.CLEANUP_JOB_HISTORY, "30 3 * * *", False),
]


def should_enable(needs_plex: bool, plex_configured: bool, enabled: bool, changed_by: str | None) -> bool:
    """Whether the system turns on an existing, disabled Plex schedule at start: Plex is configured now and
    no admin disabled it (rows from before the column existed, NULL, count as the system's)."""
    return needs_plex and plex_configured and not enabled and changed_by != ADMIN


def ensure_default_schedules(settings: Settings, now: datetime | None = None) -> list[str]:
    """Insert the defaults whose type has no row yet, and enable the Plex ones that Plex's configuration now
    allows (see should_enable). Returns the names inserted now.

    The unique index on scheduled_jobs.type makes concurrent starts safe (INSERT … ON CONFLICT DO NOTHING).
    """
    now = now or utcnow()
    inserted = []
    for name, job_type, cron, needs_plex in DEFAULT_SCHEDULES:
        existing = ScheduledJob.get_or_none(ScheduledJob.type == job_type)
        if existing is not None:
            if should_enable(needs_plex, settings.plex_configured, existing.enabled, existing.enabled_changed_by):
                _enable(existing, settings, now)
            continue
        enabled = settings.plex_configured or not needs_plex
        ScheduledJob.insert(
            name=name, type=job_type, schedule=cron, enabled=enabled, payload={}, enabled_changed_by=SYSTEM,
            next_run=next_fire_time(cron, now, settings.scheduler_timezone) if enabled else None,
        ).on_conflict_ignore().execute()
        inserted.append(name)
    return inserted


def _enable(row: ScheduledJob, settings: Settings, now: datetime) -> None:
    try:
        next_run = next_fire_time(row.schedule, now, settings.scheduler_timezone)
    except ValueError:  # a stored cron that never fires: leave it for an admin to fix
        log.warning("schedule %s not enabled: %r never fires", row.name, row.schedule)
        return
    # guarded by enabled = false, so two processes starting at once enable it once
    updated = (ScheduledJob.update(enabled=True, enabled_changed_by=SYSTEM, next_run=next_run, updated_at=now)
               .where((ScheduledJob.id == row.id) & (ScheduledJob.enabled == False)).execute())  # noqa: E712
    if updated:
        log.info("Plex is configured: enabled schedule %s", row.name)

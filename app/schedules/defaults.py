"""The default schedules, created on first start when missing (never duplicated, never overwritten)."""
from __future__ import annotations

from datetime import datetime

from app.config import Settings
from app.models import ScheduledJob, utcnow
from app.schedules.cron import next_fire_time

# (name, job type, cron, needs Plex)
DEFAULT_SCHEDULES: list[tuple[str, str, str, bool]] = [
    ("Library Scan", "scan_plex", "0 */6 * * *", True),
    ("Recently Added Check", "plex_recently_added_check", "*/5 * * * *", True),
    ("Retry Missing Torrents", "retry_missing_torrents", "0 0 * * *", False),
    ("Retry Failed Imports", "retry_failed_imports", "0 */6 * * *", False),
    ("Cleanup Seeded Torrents", "cleanup_seeded_torrents", "*/30 * * * *", False),
    ("Job History Cleanup", "cleanup_job_history", "30 3 * * *", False),
]


def ensure_default_schedules(settings: Settings, now: datetime | None = None) -> list[str]:
    """Insert the defaults whose type has no row yet. Returns the names inserted now.

    The unique index on scheduled_jobs.type makes concurrent starts safe (INSERT … ON CONFLICT DO NOTHING).
    """
    now = now or utcnow()
    inserted = []
    for name, job_type, cron, needs_plex in DEFAULT_SCHEDULES:
        enabled = settings.plex_configured or not needs_plex
        row = {
            "name": name, "type": job_type, "schedule": cron, "enabled": enabled, "payload": {},
            "next_run": next_fire_time(cron, now, settings.scheduler_timezone) if enabled else None,
        }
        if ScheduledJob.select().where(ScheduledJob.type == job_type).exists():
            continue
        ScheduledJob.insert(**row).on_conflict_ignore().execute()
        inserted.append(name)
    return inserted

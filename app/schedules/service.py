"""Schedule operations for the API and CLI: Trigger Now, edits, and the status report (with late detection)."""
from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import LockError

from app.config import get_settings
from app.errors import AppError
from app.jobs import types
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.jobs.types import JobKind
from app.models import Job, JobStatus, ScheduledJob, status_values, utcnow
from app.redis_connection import get_redis
from app.schedules.cron import InvalidSchedule, describe, next_fire_time, validate_cron
from app.validation import parse_uuid, text_problem

LATE_GRACE = timedelta(seconds=60)
UNFINISHED = status_values(JobStatus.UNFINISHED)
SCHEDULER_HEARTBEAT_KEY = "rmab:scheduler:heartbeat"
TRIGGER_LOCK = "rmab:schedule:{id}:trigger"


class ScheduleError(AppError):
    """A refused schedule operation (400 unless said; `details`: runningJobId)."""


def find_schedule(id_or_name: str) -> ScheduledJob:
    canonical = parse_uuid(id_or_name)
    row = None
    if canonical is not None:
        row = ScheduledJob.get_or_none(ScheduledJob.id == canonical)
    if row is None and text_problem("name", id_or_name) is None:  # NUL and the like cannot be queried
        row = ScheduledJob.get_or_none(ScheduledJob.name == id_or_name) or \
            ScheduledJob.get_or_none(ScheduledJob.type == id_or_name)
    if row is None:
        raise ScheduleError(f"no scheduled job {id_or_name!r}", status=404)
    return row


def run_payload(row: ScheduledJob) -> dict:
    """The payload a run of this schedule gets (scan_plex needs the library id)."""
    payload = {**(row.payload or {}), "scheduledJobId": str(row.id)}
    if row.type == JobKind.SCAN_PLEX:
        settings = get_settings()
        if not settings.plex_configured:
            missing = [name for name, value in (("PLEX_URL", settings.plex_url), ("PLEX_TOKEN", settings.plex_token),
                                                ("PLEX_LIBRARY_ID", settings.plex_library_id)) if not value]
            raise ScheduleError(f"{row.name} needs Plex to be configured; missing: {', '.join(missing)}")
        payload.setdefault("libraryId", settings.plex_library_id)
    return payload


def running_run(row: ScheduledJob) -> Job | None:
    """The schedule's unfinished run (pending, delayed, active or stuck), newest first, or None: a timer
    tick and Trigger Now both refuse to start another one next to it. Besides the last run, any run of
    the schedule counts (a retry of a failed run also carries the schedule's id)."""
    started_by_schedule = Job.scheduled_job_id == row.id
    if row.last_run_job_id:
        started_by_schedule |= Job.id == row.last_run_job_id
    return (Job.select().where(started_by_schedule & Job.status.in_(UNFINISHED))
            .order_by(Job.created_at.desc()).first())


def trigger_job_now(id_or_name: str, now: datetime | None = None) -> str:
    """Run a schedule's job at once through add_job; returns the new job id.

    Refused (ScheduleError 409, `runningJobId`) while a run of the schedule is unfinished, the rule timer
    ticks obey. A short Redis lock around check-and-add makes two simultaneous triggers (a double click)
    start one run: the second one sees the first's row, or the lock.
    """
    row = find_schedule(id_or_name)
    payload = run_payload(row)
    lock = get_redis().lock(TRIGGER_LOCK.format(id=row.id), timeout=60, blocking=False)
    if not lock.acquire():
        raise ScheduleError(f"{row.name} is being started by another Trigger Now right now", status=409)
    try:
        running = running_run(row)
        if running is not None:
            raise ScheduleError(f"{row.name} is still running: job {running.id} ({running.status})", status=409,
                                runningJobId=str(running.id))
        job_id = add_job(row.type, payload, scheduled_job_id=row.id)
    finally:
        _release(lock)
    now = now or utcnow()
    ScheduledJob.update(last_run=now, last_run_job_id=job_id, updated_at=now).where(ScheduledJob.id == row.id).execute()
    create_job_logger(job_id, "Scheduler").info(f"Started by Trigger Now for schedule '{row.name}'")
    return job_id


def _release(lock: Any) -> None:
    try:
        lock.release()
    except LockError:  # expired meanwhile: nothing to release
        pass


_EDITABLE = {"name", "schedule", "enabled"}


def update_schedule(id_or_name: str, body: Any, now: datetime | None = None) -> ScheduledJob:
    """Apply {name?, schedule?, enabled?}; validates everything before writing anything."""
    row = find_schedule(id_or_name)
    if not isinstance(body, dict):
        raise ScheduleError("body must be a JSON object with any of: name, schedule, enabled")
    unknown = sorted(set(body) - _EDITABLE)
    if unknown:
        raise ScheduleError(f"unknown field(s): {', '.join(unknown)}; editable: name, schedule, enabled")
    changes: dict[str, Any] = {}
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise ScheduleError("name must be a non-empty string of at most 100 characters")
        problem = text_problem("name", name)
        if problem:
            raise ScheduleError(problem)
        changes["name"] = name.strip()
    if "schedule" in body:
        try:
            changes["schedule"] = validate_cron(body["schedule"], now)
        except InvalidSchedule as exc:
            raise ScheduleError(f"schedule: {exc}") from None
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise ScheduleError("enabled must be true or false")
        changes["enabled"] = body["enabled"]
        if body["enabled"] != row.enabled:
            # an admin's choice: ensure_default_schedules never turns it back (the page always sends
            # `enabled`, so only an actual change counts)
            changes["enabled_changed_by"] = "admin"
    now = now or utcnow()
    schedule = changes.get("schedule", row.schedule)
    enabled = changes.get("enabled", row.enabled)
    if "schedule" in changes or "enabled" in changes:
        try:
            changes["next_run"] = next_fire_time(schedule, now, get_settings().scheduler_timezone) if enabled else None
        except ValueError:  # a stored string from before validation that never fires (CroniterBadDateError)
            raise ScheduleError(f"schedule: {schedule!r} never fires; set a new one to enable it") from None
    if changes:
        changes["updated_at"] = now
        ScheduledJob.update(**changes).where(ScheduledJob.id == row.id).execute()
    return ScheduledJob.get_by_id(row.id)


def late_reason(row: ScheduledJob, last_job: Job | None, live_workers: dict[str, int], scheduler_alive: bool,
                now: datetime, paused: Collection[str] = ()) -> str | None:
    """Why a schedule's run has not started within LATE_GRACE of when it was due; None when it is on time, and
    for a disabled schedule or one whose job type an admin paused (its run waits on purpose)."""
    if not row.enabled or row.type in paused:
        return None
    if row.next_run is not None and row.next_run < now - LATE_GRACE:
        overdue = int((now - row.next_run).total_seconds())
        cause = "the scheduler process is not running" if not scheduler_alive else "the scheduler is behind"
        return f"run due {overdue} s ago has not started: {cause}"
    if last_job is not None and last_job.status in JobStatus.NOT_STARTED:
        waiting_since = last_job.run_at or last_job.created_at
        if waiting_since < now - LATE_GRACE:
            definition = types.get(row.type)
            group = definition.group if definition else row.type
            waited = int((now - waiting_since).total_seconds())
            if live_workers.get(group, 0) == 0:
                return f"last run queued {waited} s ago: no live workers for the '{group}' queue"
            return f"last run queued {waited} s ago: the '{group}' workers are busy"
    return None


def schedule_report(rows: list[ScheduledJob], live_workers: dict[str, int], scheduler_alive: bool,
                    now: datetime | None = None, paused: Collection[str] | None = None) -> list[dict]:
    """Each schedule for the pages and the API. `paused`: the paused job types (read from the table when None);
    a paused type's schedule is never late and says `paused: true`."""
    from app.jobs.pausing import paused_types

    now = now or utcnow()
    paused = set(paused_types()) if paused is None else set(paused)
    tz = get_settings().scheduler_timezone
    last_ids = [row.last_run_job_id for row in rows if row.last_run_job_id]
    last_jobs = {job.id: job for job in Job.select().where(Job.id.in_(last_ids))} if last_ids else {}
    report = []
    for row in rows:
        last_job = last_jobs.get(row.last_run_job_id)
        duration = None
        if last_job and last_job.started_at and last_job.completed_at:
            duration = round((last_job.completed_at - last_job.started_at).total_seconds(), 3)
        reason = late_reason(row, last_job, live_workers, scheduler_alive, now, paused)
        report.append({
            "id": str(row.id), "name": row.name, "type": row.type, "schedule": row.schedule,
            "scheduleHuman": describe(row.schedule, tz), "enabled": row.enabled, "payload": row.payload,
            "lastRun": _iso(row.last_run), "lastRunJobId": str(row.last_run_job_id) if row.last_run_job_id else None,
            "nextRun": _iso(row.next_run), "lastRunStatus": last_job.status if last_job else None,
            "lastRunDuration": duration, "late": reason is not None, "lateReason": reason,
            "paused": row.type in paused,
        })
    return report


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None

"""Timer runs: keep rq-scheduler in step with scheduled_jobs, and fire each tick exactly once.

Each enabled schedule has one rq-scheduler entry, id `schedule-<uuid>`, at its `next_run` (computed
here with croniter in SCHEDULER_TIMEZONE: rq-scheduler's own cron uses the host's local time). When
an entry is due, rq-scheduler moves it to the `schedules` queue and the scheduler process runs
`fire_schedule`, which claims the tick with a conditional UPDATE (next_run = the tick's time) before
calling add_job. Restarts, two scheduler processes, or a re-enqueued entry therefore give one run per
tick; a tick whose previous run is still waiting or running is skipped with a logged reason.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from app.config import get_settings
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.models import ScheduledJob, utcnow
from app.schedules.cron import next_fire_time
from app.schedules.service import ScheduleError, run_payload, running_run

log = logging.getLogger("scheduler.timer")
SCHEDULES_QUEUE = "schedules"
ENTRY_PREFIX = "schedule-"
FIRE = "app.schedules.timer.fire_schedule"


def entry_id(schedule_id: Any) -> str:
    return f"{ENTRY_PREFIX}{schedule_id}"


def _unix(value: datetime) -> int:
    import calendar

    return calendar.timegm(value.utctimetuple())


def sync_timer(timer: Any, now: datetime | None = None) -> dict[str, int]:
    """Make the timer's entries (`timer`: rq-scheduler's Scheduler, see SchedulerProcess) match the table:
    add, move and cancel. Returns counts of each."""
    now = now or utcnow()
    tz = get_settings().scheduler_timezone
    desired: dict[str, ScheduledJob] = {}
    for row in ScheduledJob.select().where(ScheduledJob.enabled == True):  # noqa: E712
        if row.next_run is None:  # enabled outside the API: start from the next tick
            try:
                row.next_run = next_fire_time(row.schedule, now, tz)
            except ValueError as exc:  # stored before cron strings were checked to fire: skip it, keep the rest
                log.warning("schedule %r (%s) is skipped: %s", row.name, row.schedule, exc)
                continue
            ScheduledJob.update(next_run=row.next_run).where(
                (ScheduledJob.id == row.id) & ScheduledJob.next_run.is_null()).execute()
        desired[entry_id(row.id)] = row
    existing = {job.id: when for job, when in timer.get_jobs(with_times=True)
                if job.id.startswith(ENTRY_PREFIX)}
    counts = {"added": 0, "moved": 0, "cancelled": 0}
    for job_id in set(existing) - set(desired):
        timer.cancel(job_id)
        counts["cancelled"] += 1
    for job_id, row in desired.items():
        when = existing.get(job_id)
        if when is not None and _unix(when) == _unix(row.next_run):
            continue
        if when is not None:
            timer.cancel(job_id)
        timer.enqueue_at(row.next_run, FIRE, str(row.id), row.next_run.isoformat(), job_id=job_id,
                                queue_name=SCHEDULES_QUEUE, job_result_ttl=0, timeout=60,
                                job_description=f"tick of schedule {row.name}")
        counts["moved" if when is not None else "added"] += 1
    return counts


def fire_schedule(schedule_id: str, due_at: str, now: datetime | None = None) -> dict:
    """Run one tick of a schedule (the function rq-scheduler's entries call)."""
    from app.db import ensure_bound

    ensure_bound()
    now = now or utcnow()
    due = datetime.fromisoformat(due_at)
    row = ScheduledJob.get_or_none(ScheduledJob.id == schedule_id)
    if row is None or not row.enabled:
        return {"skipped": "schedule removed or disabled"}
    following = next_fire_time(row.schedule, max(now, due), get_settings().scheduler_timezone)
    claimed = (ScheduledJob.update(next_run=following, updated_at=now)
               .where((ScheduledJob.id == row.id) & (ScheduledJob.enabled == True)  # noqa: E712
                      & (ScheduledJob.next_run == due)).execute())
    if not claimed:
        return {"skipped": f"tick {due_at} already handled or rescheduled"}

    previous = running_run(row)  # the same overlap rule as Trigger Now
    if previous is not None:
        reason = (f"Scheduled run of '{row.name}' due {due_at}Z skipped: the previous run {previous.id} is still "
                  f"{previous.status}")
        log.warning(reason)
        create_job_logger(str(previous.id), "Scheduler").warning(reason)
        return {"skipped": reason}
    try:
        job_id = add_job(row.type, run_payload(row), scheduled_job_id=row.id)
    except ScheduleError as exc:
        log.warning("schedule %s not run: %s", row.name, exc)
        return {"skipped": str(exc)}
    ScheduledJob.update(last_run=now, last_run_job_id=job_id, updated_at=now).where(
        ScheduledJob.id == row.id).execute()
    create_job_logger(job_id, "Scheduler").info(
        f"Started by schedule '{row.name}' ({row.schedule}) for the tick due {due_at}Z",
        {"scheduledJobId": str(row.id), "dueAt": due_at + "Z", "nextRun": following.isoformat() + "Z"})
    return {"jobId": job_id, "nextRun": following.isoformat()}

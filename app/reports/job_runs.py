"""The durations of the jobs on a page (app/reports/durations.py decides), read in a few queries for the
whole page: the rows an admin retry replaced (per retry generation, usually none or one: one query by
request, one for system jobs) and each row's first event (one grouped query)."""
from __future__ import annotations

from typing import Any

from peewee import fn

from app.models import Job, JobEvent, JobStatus
from app.reports.durations import Durations, RowTimes, durations

MAX_RETRY_GENERATIONS = 50  # a chain is as long as the admin's retries of one job; this bounds a cycle too


def _retried_rows_of(jobs: list[Job]) -> list[Job]:
    """The rows whose retry started one of these jobs. A retried row is `failed` and has its retry's request
    (found by the request index) or, for a system job, its type (the type/status index): retry_job_id has
    no index of its own."""
    columns = (Job.id, Job.type, Job.request, Job.retry_job_id, Job.started_at, Job.completed_at, Job.attempts,
               Job.polls)
    retried = Job.retry_job_id.in_([job.id for job in jobs]) & (Job.status == JobStatus.FAILED.value)
    request_ids = sorted({job.request_id for job in jobs if job.request_id}, key=str)
    system_types = sorted({job.type for job in jobs if not job.request_id})
    rows: list[Job] = []
    if request_ids:
        rows.extend(Job.select(*columns).where(retried & Job.request.in_(request_ids)))
    if system_types:
        rows.extend(Job.select(*columns).where(retried & Job.request.is_null() & Job.type.in_(system_types)))
    return rows


def _earlier_rows(jobs: list[Job]) -> dict[str, Job]:
    """Each retried row that leads to a job of the list (directly or through other retries), by its id."""
    found: dict[str, Job] = {}
    wanted = jobs
    for _ in range(MAX_RETRY_GENERATIONS):
        if not wanted:
            break
        wanted = [row for row in _retried_rows_of(wanted) if str(row.id) not in found]
        found.update((str(row.id), row) for row in wanted)
    return found


def _first_events(job_ids: list[Any]) -> dict[str, Any]:
    if not job_ids:
        return {}
    query = (JobEvent.select(JobEvent.job, fn.MIN(JobEvent.created_at).alias("first"))
             .where(JobEvent.job.in_(job_ids)).group_by(JobEvent.job))
    return {str(row.job_id): row.first for row in query}


def _times(job: Job, first_events: dict[str, Any]) -> RowTimes:
    return RowTimes(started_at=job.started_at, completed_at=job.completed_at,
                    first_event_at=first_events.get(str(job.id)), attempts=job.attempts, polls=job.polls)


def durations_for(jobs: list[Job]) -> dict[str, Durations]:
    """Last run and whole duration of each job, by job id."""
    if not jobs:
        return {}
    earlier = _earlier_rows(jobs)
    predecessor = {str(row.retry_job_id): row for row in earlier.values()}
    first_events = _first_events([job.id for job in jobs] + [row.id for row in earlier.values()])
    result = {}
    for job in jobs:
        chain = [job]
        while str(chain[0].id) in predecessor and len(chain) <= MAX_RETRY_GENERATIONS:
            chain.insert(0, predecessor[str(chain[0].id)])
        result[str(job.id)] = durations([_times(row, first_events) for row in chain])
    return result

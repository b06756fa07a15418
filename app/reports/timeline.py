"""A request's whole story for its page: every event of every job of the request, oldest first.

The request's own jobs (search, grab, every poll milestone of the download's monitor, import, retries and
re-searches) carry its id. The Plex jobs that find the book in the library are system jobs, one run for
many requests: their event about this request names it in its metadata (`requestId`), so those are added
from the Plex jobs that ran while the request was open.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.jobs.types import JobKind
from app.models import Job, JobEvent, Request, utcnow

PLEX_JOB_TYPES = (JobKind.PLEX_RECENTLY_ADDED_CHECK, JobKind.SCAN_PLEX)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    job_id: str
    job_type: str
    level: str
    context: str
    message: str
    metadata: Any


def _entry(event: JobEvent) -> TimelineEntry:
    return TimelineEntry(at=event.created_at, job_id=str(event.job.id), job_type=event.job.type, level=event.level,
                         context=event.context, message=event.message, metadata=event.metadata)


def _plex_events(request: Request) -> list[JobEvent]:
    """The Plex jobs' events about this request (the book found in the library), while it was open."""
    until = request.completed_at or utcnow()  # the run that made it available started before this
    query = (JobEvent.select(JobEvent, Job.id, Job.type).join(Job)
             .where(Job.request.is_null() & Job.type.in_(PLEX_JOB_TYPES)
                    & Job.created_at.between(request.created_at, until) & JobEvent.metadata.is_null(False))
             .order_by(JobEvent.created_at))
    wanted = str(request.id)
    return [event for event in query if isinstance(event.metadata, dict) and event.metadata.get("requestId") == wanted]


def request_timeline(request: Request) -> list[TimelineEntry]:
    own = (JobEvent.select(JobEvent, Job.id, Job.type).join(Job).where(Job.request == request.id)
           .order_by(JobEvent.created_at))
    entries = [_entry(event) for event in own] + [_entry(event) for event in _plex_events(request)]
    return sorted(entries, key=lambda e: e.at)  # stable: ties keep the queries' order

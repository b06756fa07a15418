"""Which failed jobs an admin's retry accepts: a rule of jobs and their requests together (the queues page counts
these, app/reports/queue_stats.py; "requeue failed" acts on them, app/admin_actions/retries.py)."""
from __future__ import annotations

import peewee
from peewee import fn

from app.audiobook_requests import state as request_state
from app.audiobook_requests.pipeline import STEP_STATUS
from app.models import Job, Request


def requeueable_failed(job_type: str | None = None) -> peewee.ModelSelect:
    """The failed rows a retry would accept: not yet retried and, for a step of a request, the request's
    latest job with the request still failed. The queues page counts exactly these and "requeue failed"
    acts on exactly these."""
    newer = Job.alias("newer")
    superseded = fn.EXISTS(newer.select(peewee.SQL("1")).where(
        (newer.request == Job.request) & (newer.created_at > Job.created_at)))
    step_types = list(STEP_STATUS)
    request_allows = (Job.request.is_null() | Job.type.not_in(step_types)
                      | ((Request.status == request_state.RequestStatus.FAILED.value) & ~superseded))
    query = (Job.select().join(Request, peewee.JOIN.LEFT_OUTER, on=(Job.request == Request.id))
             .where(Job.retryable() & request_allows))
    return query.where(Job.type == job_type) if job_type else query

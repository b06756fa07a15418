"""Which requests waiting for a release (`awaiting_search`) retry_missing_torrents searches now.

A request is due once its back-off is over (requests.next_search_at, set by each fruitless search from
app/pipeline/search_backoff.py; NULL: at once, e.g. rows from before migration 9) and no search of it is
unfinished (a search queued at once after a stalled download, or one still waiting for a worker, is not
queued twice). Longest overdue first, then least recently searched, at most RETRY_BATCH a run.
"""
from __future__ import annotations

from datetime import datetime

import peewee
from peewee import fn

from app.audiobook_requests.service import RETRY_BATCH
from app.audiobook_requests.state import RequestStatus
from app.jobs.types import JobKind
from app.models import TERMINAL_JOB_STATUSES, Job, Request


def due_for_search(now: datetime, limit: int = RETRY_BATCH) -> list[Request]:
    searching = Job.select(peewee.SQL("1")).where((Job.request == Request.id) & (Job.type == JobKind.SEARCH_INDEXERS)
                                                  & Job.status.not_in(TERMINAL_JOB_STATUSES))
    return list(Request.select()
                .where((Request.status == RequestStatus.AWAITING_SEARCH.value)
                       & (Request.next_search_at.is_null() | (Request.next_search_at <= now))
                       & ~fn.EXISTS(searching))
                .order_by(Request.next_search_at.asc(nulls="first"), Request.last_search_at.asc(nulls="first"),
                          Request.created_at, Request.id)
                .limit(limit))


def waiting_count(now: datetime) -> int:
    """Requests in awaiting_search whose back-off is not over yet (the run's event says how many)."""
    return (
        Request.select()
        .where((Request.status == RequestStatus.AWAITING_SEARCH.value) & (Request.next_search_at > now))
        .count()
    )

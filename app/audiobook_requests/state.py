"""The one module that writes request status. Every transition is a conditional UPDATE from a named
set of statuses, so a slow worker never overwrites a later status and a cancelled request stays cancelled
until an admin re-opens it (the original's request state machine, docs/pipeline.md)."""
from __future__ import annotations

import logging
from typing import Any

import peewee

from app.audiobook_requests.messages import request_message
from app.audiobook_requests.pipeline import STEP_STATUS
from app.db import database
from app.jobs import fence
from app.models import Request, utcnow
from app.statuses import FINISHED_WITH_TORRENT, RELEASED_TORRENT, RequestStatus  # noqa: F401 (app/statuses.py)

log = logging.getLogger(__name__)


# A book has at most one request in these (create_request's 409; a unique index, migration 12: a change here
# needs a migration that rebuilds that index).
ACTIVE = (
    RequestStatus.PENDING,
    RequestStatus.SEARCHING,
    RequestStatus.AWAITING_SEARCH,
    RequestStatus.DOWNLOADING,
    RequestStatus.PROCESSING,
    RequestStatus.DOWNLOADED,
    RequestStatus.AVAILABLE,
    RequestStatus.AWAITING_IMPORT,
    RequestStatus.WARN,
)
CANCELLABLE = (
    RequestStatus.PENDING,
    RequestStatus.SEARCHING,
    RequestStatus.AWAITING_SEARCH,
    RequestStatus.DOWNLOADING,
    RequestStatus.AWAITING_IMPORT,
    RequestStatus.WARN,
    RequestStatus.FAILED,
)

# An admin's retry re-runs the step that failed: the search from these (a cancelled request is re-opened) ...
RETRY_SEARCH_FROM = (RequestStatus.FAILED, RequestStatus.AWAITING_SEARCH, RequestStatus.CANCELLED)
# ... the import (organize_files, from the recorded download) from these.
RETRY_IMPORT_FROM = (RequestStatus.WARN, RequestStatus.AWAITING_IMPORT)
RETRYABLE = frozenset(RETRY_SEARCH_FROM + RETRY_IMPORT_FROM)

# A job is working on these: a request in one of them must always have an unfinished job (the
# reconciler repairs those that do not).
IN_PROGRESS = (RequestStatus.PENDING, RequestStatus.SEARCHING, RequestStatus.DOWNLOADING, RequestStatus.PROCESSING)

# The status each pipeline step works in: STEP_STATUS in app/audiobook_requests/pipeline.py.

# to-status: statuses it may be entered from (a step's own retry re-enters its status)
TRANSITIONS: dict[RequestStatus, tuple[RequestStatus, ...]] = {
    # not from FAILED: a stale search job of a failed request must not resurrect it (an admin's retry
    # of the failed job re-enters through reenter_step_for_retry)
    RequestStatus.SEARCHING: (RequestStatus.PENDING, RequestStatus.AWAITING_SEARCH, RequestStatus.SEARCHING),
    RequestStatus.AWAITING_SEARCH: (RequestStatus.SEARCHING, RequestStatus.DOWNLOADING),
    RequestStatus.DOWNLOADING: (RequestStatus.SEARCHING, RequestStatus.DOWNLOADING),
    RequestStatus.PROCESSING: (
        RequestStatus.DOWNLOADING,
        RequestStatus.AWAITING_IMPORT,
        RequestStatus.WARN,
        RequestStatus.PROCESSING,
    ),
    RequestStatus.DOWNLOADED: (
        RequestStatus.PROCESSING,
        RequestStatus.AVAILABLE,
    ),  # back from available when the book left the library
    RequestStatus.AVAILABLE: (
        RequestStatus.DOWNLOADED,
        RequestStatus.AWAITING_SEARCH,
        RequestStatus.AWAITING_IMPORT,
        RequestStatus.WARN,
        RequestStatus.FAILED,
    ),  # a book added by hand
    RequestStatus.AWAITING_IMPORT: (RequestStatus.PROCESSING,),
    RequestStatus.WARN: (RequestStatus.PROCESSING,),
    RequestStatus.FAILED: (
        RequestStatus.PENDING,
        RequestStatus.SEARCHING,
        RequestStatus.DOWNLOADING,
        RequestStatus.PROCESSING,
    ),
    # entered only by an admin's retry of the search (service.retry_request): no job moves a request to pending,
    # so a stale job never re-opens a cancelled one
    RequestStatus.PENDING: (RequestStatus.FAILED, RequestStatus.AWAITING_SEARCH, RequestStatus.CANCELLED),
    RequestStatus.CANCELLED: CANCELLABLE,
    # Any request may be deleted, and nothing leaves `deleted`: no other entry lists it as a source, so the
    # reconciler, the Plex matcher, retries and stale jobs never revive it.
    RequestStatus.DELETED: tuple(s for s in RequestStatus if s is not RequestStatus.DELETED),
}

# An admin picking a release by hand (interactive search) moves the request into `searching`, the status
# download_torrent enters `downloading` from. From these only: a request importing, imported, available or
# deleted is refused (its own pipeline or the admin's decision stands). A downloading request swaps its
# download (the unfinished torrent is removed and blocklisted, app/audiobook_requests/interactive.py); a
# cancelled one is re-opened.
PICK_RELEASE_FROM = (
    RequestStatus.PENDING,
    RequestStatus.SEARCHING,
    RequestStatus.AWAITING_SEARCH,
    RequestStatus.DOWNLOADING,
    RequestStatus.FAILED,
    RequestStatus.WARN,
    RequestStatus.AWAITING_IMPORT,
    RequestStatus.CANCELLED,
)


# The search back-off starts afresh (app/pipeline/search_backoff.py): a search found a release, an admin
# retried the search or picked a release by hand.
SEARCH_BACKOFF_CLEARED: dict[str, Any] = {"fruitless_searches": 0, "next_search_at": None}


def allowed(current: str, target: RequestStatus) -> bool:
    return current in {s.value for s in TRANSITIONS[target]}


def can_retry(status: str) -> bool:
    """Whether an admin's retry applies to a request in `status` (the service and the pages ask this)."""
    return status in RETRYABLE


def can_pick(status: str) -> bool:
    """Whether an admin may pick a release for a request in `status` (interactive search; the pages ask this)."""
    return status in {s.value for s in PICK_RELEASE_FROM}


def can_cancel(status: str) -> bool:
    """Whether an admin's cancel applies to a request in `status` (the service and the pages ask this)."""
    return allowed(status, RequestStatus.CANCELLED)


def transition(request_id: Any, target: RequestStatus, *, only_from: tuple[RequestStatus, ...] | None = None,
               **fields: Any) -> bool:
    """Move a request to `target` if it is in one of the allowed statuses (or `only_from`, a subset).

    Returns False, writing nothing, when the request is elsewhere (cancelled, or moved on). Entering one of
    ANNOUNCED queues a notification: a caller that transitions inside its own transaction wraps it in
    app/notifications/events.py's held_until_commit, so that the message is queued once the write is committed.
    """
    sources = only_from or TRANSITIONS[target]
    if not set(sources) <= set(TRANSITIONS[target]):
        raise ValueError(f"{target.value} cannot be entered from {[s.value for s in sources]}")
    if isinstance(fields.get("error_message"), str):  # users see it: never a database's own error text
        fields["error_message"] = request_message(fields["error_message"])
    values: dict[str, Any] = {"status": target.value, "updated_at": utcnow(), **fields}
    query = (Request.update(**values)
             .where((Request.id == request_id) & Request.status.in_([s.value for s in sources]) & _run_holds_lease()))
    if target in ACTIVE and not set(sources) <= set(ACTIVE):
        entered = _enter_active(query, request_id, target)
    else:
        entered = query.execute() == 1
    if entered and target in ANNOUNCED:
        _announce(request_id, target, values.get("error_message"))
    return entered


# Entering one of these queues a notification (app/notifications/events.py): each conditional UPDATE that
# moved the request is the one writer of that entry, so a request's failure is announced exactly once.
ANNOUNCED = (RequestStatus.AVAILABLE, RequestStatus.FAILED, RequestStatus.WARN)


def _announce(request_id: Any, target: RequestStatus, reason: str | None) -> None:
    from app.notifications.events import request_entered

    request_entered(request_id, target.value, reason)


def is_active_book_conflict(exc: peewee.IntegrityError) -> bool:
    """True when `exc` is the unique index of migration 12: a second active request of one book."""
    return "book_key" in str(exc)


def _enter_active(query: Any, request_id: Any, target: RequestStatus) -> bool:
    """Run a conditional UPDATE that moves a request from an inactive status into an active one. False, writing
    nothing, when another request of the same book is active (the unique index of migration 12 refuses it):
    that request stays where it is, as for any refused transition. In a savepoint, so that a caller's
    transaction goes on."""
    try:
        with database.obj.atomic():
            return query.execute() == 1
    except peewee.IntegrityError as exc:
        if not is_active_book_conflict(exc):
            raise
        log.warning("request %s stays out of %s: another request for the same book is active", request_id,
                    target.value)
        return False


def _run_holds_lease() -> Any:
    """Inside a job's run, a request write also requires that the run still holds its job (fencing,
    app/jobs/fence.py): a stale run never moves a request after its successor. Outside a run: true."""
    return fence.holds_lease()


def reenter_step_for_retry(request_id: Any, job_type: str) -> bool:
    """An admin's retry of a step's failed job: move the request from `failed` back into the status that
    step works in (pipeline.STEP_STATUS), clearing the error, so the new run's own transition is accepted.

    Only from `failed`: a request that is cancelled, available, or in any step (a retry elsewhere already
    runs) is left alone and False returned. This is the one way out of `failed` into a step's status; the
    processors' TRANSITIONS stay strict, so a stale job of a failed request never resurrects it.
    """
    step = STEP_STATUS[job_type]
    fresh_search = (
        SEARCH_BACKOFF_CLEARED if step is RequestStatus.SEARCHING else {}
    )  # an admin's retry: back-off afresh
    return _enter_active(
        Request.update(status=step.value, error_message=None, **fresh_search, updated_at=utcnow()).where(
            (Request.id == request_id) & (Request.status == RequestStatus.FAILED.value)
        ),
        request_id,
        step,
    )


def enter_search_for_pick(request_id: Any, current: str) -> bool:
    """An admin picked a release: from `current` (one of PICK_RELEASE_FROM, the status the admin saw) into
    `searching` (error, progress and import attempts cleared, the search back-off afresh), so the
    download_torrent job queued next is accepted. False, writing nothing, when the request moved on meanwhile (a
    download that finished is not swapped) or when a cancelled request's book has another active request (the
    index of migration 12). Like reenter_step_for_retry, a way in that the processors' TRANSITIONS do not offer
    (not from `failed`, `downloading` or `cancelled` there, so a stale job never resurrects or rewinds a
    request)."""
    if current not in {s.value for s in PICK_RELEASE_FROM}:
        return False
    return _enter_active(
        Request.update(
            status=RequestStatus.SEARCHING.value,
            error_message=None,
            progress=0,
            import_attempts=0,
            **SEARCH_BACKOFF_CLEARED,
            updated_at=utcnow(),
        ).where((Request.id == request_id) & (Request.status == current)),
        request_id,
        RequestStatus.SEARCHING,
    )


def clear_search_backoff(request_id: Any) -> bool:
    """A search found a usable release: a later fruitless search waits the shortest delay again. Fenced
    like a transition; the status is left as it is."""
    return (Request.update(**SEARCH_BACKOFF_CLEARED)
            .where((Request.id == request_id) & _run_holds_lease()).execute()) == 1


def update_progress(request_id: Any, progress: int) -> bool:
    """Progress only while downloading (never resurrects a request that moved on)."""
    return (
        Request.update(progress=max(0, min(100, progress)), updated_at=utcnow())
        .where((Request.id == request_id) & (Request.status == RequestStatus.DOWNLOADING.value) & _run_holds_lease())
        .execute()
    ) == 1


def update_progress_of_polls(polls: list[tuple[Any, int, str, str]]) -> int:
    """update_progress for the downloads of a poll batch (workers/poll_batch.py; PostgreSQL), in one statement:
    each (request id, percent, job id, token) lands only while the request is downloading and the job's row is
    still active with that run's token; an unchanged percent is not written again. Returns rows written."""
    if not polls:
        return 0
    values = ", ".join(["(%s::uuid, %s::int, %s::uuid, %s)"] * len(polls))
    sql = (f"UPDATE requests SET progress = v.progress, updated_at = %s "
           f"FROM (VALUES {values}) AS v(id, progress, job_id, token), jobs "
           f"WHERE requests.id = v.id AND requests.status = %s AND requests.progress IS DISTINCT FROM v.progress "
           f"AND jobs.id = v.job_id AND jobs.status = 'active' AND jobs.run_token = v.token")
    params: list[Any] = [utcnow()]
    for request_id, percent, job_id, token in polls:
        params += [str(request_id), max(0, min(100, percent)), job_id, token]
    params.append(RequestStatus.DOWNLOADING.value)
    return database.obj.execute_sql(sql, params).rowcount

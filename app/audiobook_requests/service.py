"""Operations behind the requests API: create, show, retry, cancel."""
from __future__ import annotations

import logging
from typing import Any

import peewee

from app.audiobook_requests.pipeline import Book, organize_payload, search_payload, step
from app.audiobook_requests.state import (
    ACTIVE,
    RETRY_IMPORT_FROM,
    RETRY_SEARCH_FROM,
    SEARCH_BACKOFF_CLEARED,
    RequestStatus,
    is_active_book_conflict,
    transition,
)
from app.audiobook_requests.torrents import release_torrents, remove_seeding_now, seeding_torrents, timeline_job
from app.db import database
from app.errors import AppError
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job, cancel_run, job_to_dict
from app.jobs.types import JobKind, Priority
from app.library.book_identity import book_key
from app.library.matching import BookQuery, Match
from app.library.plex_index import library_index
from app.models import (
    TERMINAL_JOB_STATUSES,
    Audiobook,
    DownloadHistory,
    Job,
    Request,
)
from app.pipeline.ranking import normalize
from app.validation import parse_uuid, text_problem

log = logging.getLogger(__name__)
_LIMITS = {"title": 500, "author": 300, "narrator": 300, "asin": 20}


class RequestError(AppError):
    """A refused request operation (400 unless said; `details`: plexGuid, field)."""


def _field_problem(name: str, value: Any) -> tuple[str | None, str | None]:
    """(clean value, None) or (None, why `value` is refused as field `name`)."""
    required = name in ("title", "author")
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        return None, (f"{name} is required" if required else None)
    if not isinstance(value, str) or not value.strip():
        return None, f"{name} must be a non-empty string"
    problem = text_problem(name, value)
    if problem:
        return None, problem
    if len(value) > _LIMITS[name]:
        return None, f"{name} is longer than {_LIMITS[name]} characters"
    clean = " ".join(value.split())
    if name == "asin" and not clean.isalnum():
        return None, "asin must be letters and digits only"
    return clean, None


def field_problems(body: dict[str, Any]) -> dict[str, str]:
    """Every refused field of a request body and why (the dashboard form shows each next to its input)."""
    problems = {}
    for name in _LIMITS:
        _, problem = _field_problem(name, body.get(name))
        if problem:
            problems[name] = problem
    return problems


def validate_body(body: Any) -> dict[str, str | None]:
    """The clean fields of a request body; RequestError (400) naming the first bad field (`field` in the
    API's answer) otherwise."""
    if not isinstance(body, dict):
        raise RequestError("body must be a JSON object with title, author, narrator?, asin?")
    clean: dict[str, str | None] = {}
    for name in _LIMITS:
        clean[name], problem = _field_problem(name, body.get(name))
        if problem:
            raise RequestError(problem, field=name)
    return clean


def _same_book(book: Audiobook, fields: dict[str, str | None]) -> bool:
    if fields["asin"] and book.audible_asin:
        return book.audible_asin.upper() == fields["asin"].upper()
    return normalize(book.title) == normalize(fields["title"] or "") and \
        normalize(book.author) == normalize(fields["author"] or "")


def library_match(fields: dict[str, str | None]) -> Match | None:
    """The plex_library item this book already is (the scans' matcher and complete index), or None."""
    book = BookQuery(fields["title"] or "", fields["author"] or "", fields["narrator"], fields["asin"])
    return library_index().match(book)


def create_request(body: Any, user_id: str = "admin") -> Request:
    """A pending request and its search (High priority). 409 when the book already has an active request,
    or when the Plex library already has it (`plexGuid` in the answer): then nothing is created."""
    fields = validate_body(body)
    candidates = Audiobook.select().where(
        (Audiobook.audible_asin == fields["asin"]) if fields["asin"] else
        (Audiobook.title.contains((fields["title"] or "")[:40])))
    for book in candidates:
        if not _same_book(book, fields):
            continue
        active = book.requests.where(Request.status.in_([s.value for s in ACTIVE])).first()
        if active is not None:
            raise _already_requested(active)
    in_library = library_match(fields)
    if in_library is not None:
        raise RequestError(f"already available in the library: {in_library.item.title}", 409,
                           plexGuid=in_library.item.guid)
    key = book_key(fields["title"] or "", fields["author"] or "", fields["asin"])
    try:
        with database.obj.atomic():  # the book row goes too when the request is refused
            book = Audiobook.create(title=fields["title"], author=fields["author"], narrator=fields["narrator"],
                                    audible_asin=fields["asin"])
            request = Request.create(audiobook=book, user_id=user_id, status=RequestStatus.PENDING.value,
                                     priority=int(Priority.HIGH), book_key=key)
    except peewee.IntegrityError as exc:
        # a create of the same book at the same moment passed the check above too: the index kept one
        if not is_active_book_conflict(exc):
            raise
        active = active_request_of_book(key)
        if active is None:  # it has already left the active statuses: say what happened all the same
            raise RequestError("another request for this book was created at the same moment; try again",
                               409) from None
        raise _already_requested(active) from None
    enqueue_search(request)
    return request


def _already_requested(active: Request) -> RequestError:
    return RequestError(f"'{active.audiobook.title}' already has a request ({active.id}) in status {active.status}",
                        409)


def active_request_of_book(key: str, other_than: Any = None) -> Request | None:
    """The active request holding book key `key` (the unique index allows one), except `other_than`."""
    query = Request.select().where((Request.book_key == key) & Request.status.in_([s.value for s in ACTIVE]))
    if other_than is not None:
        query = query.where(Request.id != other_than)
    return query.first()


def enqueue_search(request: Request) -> str:
    return add_job(JobKind.SEARCH_INDEXERS, search_payload(str(request.id), Book.of(request.audiobook)),
                   priority=step(JobKind.SEARCH_INDEXERS).priority)


def get_request(request_id: str) -> Request:
    canonical = parse_uuid(request_id)
    request = Request.get_or_none(Request.id == canonical) if canonical else None
    if request is None:
        raise RequestError("request not found", 404)
    return request


def request_to_dict(request: Request) -> dict[str, Any]:
    jobs = Job.select().where(Job.request == request.id).order_by(Job.created_at)
    book = request.audiobook
    return {
        "id": str(request.id), "status": request.status, "progress": request.progress,
        "errorMessage": request.error_message,
        "audiobook": {"id": str(book.id), "title": book.title, "author": book.author, "narrator": book.narrator,
                      "asin": book.audible_asin},
        "searchAttempts": request.search_attempts, "importAttempts": request.import_attempts,
        "seedingTorrents": seeding_torrents([request.id]).get(str(request.id), []),
        "jobs": [{"id": str(j.id), "type": j.type, "status": j.status, "createdAt": job_to_dict(j)["createdAt"]}
                 for j in jobs],
    }


def retry_request(request_id: str) -> str:
    """Re-run the step that failed: the search (failed, awaiting_search, and a cancelled request, re-opened) or
    the import (warn, awaiting_import)."""
    request = get_request(request_id)
    if request.status in RETRY_SEARCH_FROM:
        if request.status == RequestStatus.CANCELLED.value:
            refuse_a_second_active_request(request)
        if not transition(
            request.id,
            RequestStatus.PENDING,
            only_from=(RequestStatus(request.status),),
            error_message=None,
            progress=0,
            **SEARCH_BACKOFF_CLEARED,
        ):
            now = Request.get_by_id(request.id)
            other = active_request_of_book(now.book_key, other_than=now.id) if now.book_key else None
            if now.status == request.status and other is not None:  # the index of migration 12 refused it
                raise RequestError(f"not retried: '{other.audiobook.title}' has another active request "
                                   f"({other.id}) in status {other.status}", 409)
            raise RequestError(f"request moved on (now {now.status}); not retried", 409)
        return enqueue_search(request)
    if request.status in RETRY_IMPORT_FROM:
        download = (DownloadHistory.select().where((DownloadHistory.request == request.id) & DownloadHistory.selected)
                    .order_by(DownloadHistory.created_at.desc()).first())
        if download is None or not download.download_path:
            raise RequestError("no completed download is recorded for this request; retry the search instead")
        return add_job(JobKind.ORGANIZE_FILES, organize_payload(str(request.id), str(request.audiobook_id),
                                                                download.download_path, manualRetry=True),
                       priority=step(JobKind.ORGANIZE_FILES).priority)
    raise RequestError(f"a request in status {request.status} has nothing to retry", 409)


def refuse_a_second_active_request(request: Request) -> None:
    """A cancelled request re-opens only while its book has no other active request (one may have been made
    since the cancel): the book would be fetched twice."""
    other = (Request.select(Request.id, Request.status)
             .where((Request.audiobook == request.audiobook_id) & (Request.id != request.id)
                    & Request.status.in_([s.value for s in ACTIVE])).first())
    if other is not None:
        raise RequestError(f"the book already has another request ({other.id}) in status {other.status}", 409)


def cancel_request(request_id: str) -> dict[str, Any]:
    """Cancel queued jobs (a running one is fenced off) and let go of the request's torrents: an unfinished one
    is removed with its partial files, a finished one keeps seeding until its indexer's limit
    (app/audiobook_requests/torrents.py)."""
    request = get_request(request_id)
    if not transition(request.id, RequestStatus.CANCELLED, error_message="Cancelled by an admin"):
        raise RequestError(f"a request in status {request.status} cannot be cancelled", 409)
    cancelled = []
    for job in Job.select().where((Job.request == request.id) & Job.status.not_in(TERMINAL_JOB_STATUSES)):
        if cancel_run(job, "Request cancelled"):
            cancelled.append(str(job.id))
    events = create_job_logger(timeline_job(request.id), "RequestCancelled")
    released = release_torrents(request.id, events)
    events.info(f"Request cancelled by an admin; {len(cancelled)} queued jobs cancelled, {len(released.removed)} "
                f"unfinished torrents removed with their files, {len(released.seeding)} finished torrents kept "
                f"seeding until their indexer's limit", {"cancelledJobs": cancelled, **released.to_dict()})
    return {"cancelledJobs": cancelled, **released.to_dict()}


def remove_seeding(request_id: str) -> dict[str, Any]:
    """An admin's "remove now": the torrents kept seeding for this request go at once, with their files
    (a torrent another request still uses is kept). 409 when none is kept."""
    request = get_request(request_id)
    if not seeding_torrents([request.id]):
        raise RequestError("no torrent of this request is kept seeding", 409)
    return remove_seeding_now(request.id, create_job_logger(timeline_job(request.id), "RemoveSeeding")).to_dict()


RETRY_BATCH = 50  # requests a retry job (retry_missing_torrents, retry_failed_imports) takes per run


def least_recently_tried(status: RequestStatus, tried_at: Any, limit: int = RETRY_BATCH) -> list[Request]:
    """Requests in `status`, never tried first, then least recently tried (`tried_at`: last_search_at or
    last_import_at), oldest request first on ties: the retry jobs take them in this order, `limit` a run."""
    return list(Request.select().where(Request.status == status.value)
                .order_by(tried_at.asc(nulls="first"), Request.created_at, Request.id).limit(limit))

"""Operations behind the requests API: create, show, retry, cancel."""
from __future__ import annotations

import logging
from typing import Any

from app.audiobook_requests.state import ACTIVE, R, transition
from app.jobs.service import add_job, cancel_run, job_to_dict, parse_job_id
from app.jobs.types import Priority
from app.models import TERMINAL_JOB_STATUSES, Audiobook, DownloadHistory, Job, Request
from app.pipeline.ranking import normalize
from app.validation import text_problem

log = logging.getLogger(__name__)
_LIMITS = {"title": 500, "author": 300, "narrator": 300, "asin": 20}


class RequestError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def validate_body(body: Any) -> dict[str, str | None]:
    if not isinstance(body, dict):
        raise RequestError("body must be a JSON object with title, author, narrator?, asin?")
    clean: dict[str, str | None] = {}
    for name, limit in _LIMITS.items():
        value = body.get(name)
        required = name in ("title", "author")
        if value is None or (isinstance(value, str) and not value.strip() and not required):
            if required:
                raise RequestError(f"{name} is required")
            clean[name] = None
            continue
        if not isinstance(value, str) or not value.strip():
            raise RequestError(f"{name} must be a non-empty string")
        problem = text_problem(name, value)
        if problem:
            raise RequestError(problem)
        if len(value) > limit:
            raise RequestError(f"{name} is longer than {limit} characters")
        clean[name] = " ".join(value.split())
    if clean["asin"] and not clean["asin"].isalnum():
        raise RequestError("asin must be letters and digits only")
    return clean


def _same_book(book: Audiobook, fields: dict[str, str | None]) -> bool:
    if fields["asin"] and book.audible_asin:
        return book.audible_asin.upper() == fields["asin"].upper()
    return normalize(book.title) == normalize(fields["title"] or "") and \
        normalize(book.author) == normalize(fields["author"] or "")


def create_request(body: Any, user_id: str = "admin") -> Request:
    """A pending request and its search (High priority). 409 when the book already has an active request."""
    fields = validate_body(body)
    candidates = Audiobook.select().where(
        (Audiobook.audible_asin == fields["asin"]) if fields["asin"] else
        (Audiobook.title.contains(fields["title"][:40])))
    for book in candidates:
        if not _same_book(book, fields):
            continue
        active = book.requests.where(Request.status.in_([s.value for s in ACTIVE])).first()
        if active is not None:
            raise RequestError(f"'{book.title}' already has a request ({active.id}) in status {active.status}", 409)
    book = Audiobook.create(title=fields["title"], author=fields["author"], narrator=fields["narrator"],
                            audible_asin=fields["asin"])
    request = Request.create(audiobook=book, user_id=user_id, status=R.PENDING.value, priority=int(Priority.HIGH))
    enqueue_search(request)
    return request


def enqueue_search(request: Request) -> str:
    book = request.audiobook
    return add_job("search_indexers", {
        "requestId": str(request.id),
        "audiobook": {"id": str(book.id), "title": book.title, "author": book.author, "asin": book.audible_asin},
    }, priority=Priority.HIGH)


def get_request(request_id: str) -> Request:
    canonical = parse_job_id(request_id)
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
        "jobs": [{"id": str(j.id), "type": j.type, "status": j.status, "createdAt": job_to_dict(j)["createdAt"]}
                 for j in jobs],
    }


def retry_request(request_id: str) -> str:
    """Re-run the step that failed: the search (failed, awaiting_search) or the import (warn, awaiting_import)."""
    request = get_request(request_id)
    if request.status in (R.FAILED.value, R.AWAITING_SEARCH.value):
        if not transition(request.id, R.PENDING, error_message=None, progress=0):
            raise RequestError(f"request moved on (now {Request.get_by_id(request.id).status}); not retried", 409)
        return enqueue_search(request)
    if request.status in (R.WARN.value, R.AWAITING_IMPORT.value):
        download = (DownloadHistory.select().where((DownloadHistory.request == request.id) & DownloadHistory.selected)
                    .order_by(DownloadHistory.created_at.desc()).first())
        if download is None or not download.download_path:
            raise RequestError("no completed download is recorded for this request; retry the search instead")
        return add_job("organize_files", {"requestId": str(request.id), "audiobookId": str(request.audiobook_id),
                                          "downloadPath": download.download_path, "manualRetry": True},
                       priority=Priority.HIGH)
    raise RequestError(f"a request in status {request.status} has nothing to retry", 409)


def cancel_request(request_id: str) -> dict[str, Any]:
    """Cancel queued jobs, stop monitoring, remove the torrent from the client (files are kept)."""
    from app.integrations.errors import ServiceError
    from app.integrations.torrent import download_client

    request = get_request(request_id)
    if not transition(request.id, R.CANCELLED, error_message="Cancelled by an admin"):
        raise RequestError(f"a request in status {request.status} cannot be cancelled", 409)
    cancelled = []
    for job in Job.select().where((Job.request == request.id) & Job.status.not_in(TERMINAL_JOB_STATUSES)):
        if cancel_run(job, "Request cancelled"):
            cancelled.append(str(job.id))
    removed = []
    for download in DownloadHistory.select().where(
            (DownloadHistory.request == request.id) & DownloadHistory.download_client_id.is_null(False)
            & DownloadHistory.download_status.not_in(["completed", "removed"])):
        try:
            download_client(download.download_client).remove(download.download_client_id, delete_files=False)
            removed.append(download.download_client_id)
            DownloadHistory.update(download_status="removed").where(DownloadHistory.id == download.id).execute()
        except ServiceError as exc:
            log.warning("could not remove torrent %s: %s", download.download_client_id, exc)
    return {"cancelledJobs": cancelled, "removedTorrents": removed}


"""scan_plex: the whole Plex library into plex_library (items gone from Plex removed), then the matcher over
the downloaded requests. The upsert and the matcher are shared with plex_recently_added_check and match_plex."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from app.audiobook_requests.state import RequestStatus, allowed, transition
from app.config import get_settings
from app.db import database
from app.integrations.plex import PlexClient, PlexItem
from app.jobs.logger import JobLogger, create_job_logger
from app.jobs.service import cancel_run
from app.jobs.types import JobKind
from app.library.matching import BookQuery, LibraryIndex, LibraryItem, Match, item_asin
from app.library.plex_index import library_index
from app.library.plex_rows import item_problem
from app.models import TERMINAL_JOB_STATUSES, Audiobook, AudiobookStatus, Job, PlexLibrary, Request, utcnow
from app.notifications import events as notifications
from app.redis_connection import get_redis
from workers.processors.registry import register

SCAN_LOCK = "rmab:lock:scan_plex"
UPSERT_BATCH = 500
WRITE_BATCH = 200


def _plex(log: JobLogger) -> tuple[PlexClient, str] | None:
    settings = get_settings()
    if not settings.plex_configured:
        log.warning("Plex is not configured (PLEX_URL, PLEX_TOKEN, PLEX_LIBRARY_ID); skipped")
        return None
    return PlexClient(settings.plex_url, settings.plex_token), settings.plex_library_id


_UPSERT_COLUMNS = ("id", "plex_guid", "plex_rating_key", "title", "author", "year", "duration", "added_at", "asin",
                   "plex_library_id", "last_scanned_at", "created_at", "updated_at", "summary", "thumb_url")
_UPDATED = [c for c in _UPSERT_COLUMNS if c not in ("id", "plex_guid", "created_at")]


def _upsert_sql(rows: int, param: str) -> str:
    """One multi-row INSERT … ON CONFLICT (plex_guid) DO UPDATE, valid on PostgreSQL and SQLite.
    Pre-built: Peewee's query building cost 3x the database time for large batches (bench/scan.py)."""
    placeholders = "(" + ", ".join([param] * len(_UPSERT_COLUMNS)) + ")"
    return (f"INSERT INTO plex_library ({', '.join(_UPSERT_COLUMNS)}) VALUES "
            + ", ".join([placeholders] * rows)
            + " ON CONFLICT (plex_guid) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _UPDATED))


def _upsert(items: Iterable[PlexItem], library_id: str, log: JobLogger) -> set[str]:
    """Insert or update plex_library rows by guid, in batches; returns the guids seen. An item that cannot
    be stored (plex_rows.item_problem) is skipped with an event; its row, if any, is kept as it was."""
    db = database.obj
    seen: set[str] = set()
    batch: list[tuple] = []
    now = utcnow()

    def flush() -> None:
        if batch:
            db.execute_sql(_upsert_sql(len(batch), db.param), [value for row in batch for value in row])
            batch.clear()

    for item in items:
        if item.guid in seen:
            continue
        seen.add(item.guid)
        problem = item_problem(item)
        if problem is not None:
            log.warning(f"Skipped Plex item {item.title[:200]!r}: {problem}")
            continue
        batch.append((uuid.uuid4().hex, item.guid, item.rating_key, item.title, item.author or "Unknown Author",
                      item.year, item.duration_ms, item.added_at and _epoch(item.added_at),
                      item_asin(LibraryItem(item.guid, item.title)), library_id, now, now, now, item.summary[:5000],
                      item.thumb))
        if len(batch) >= UPSERT_BATCH:
            flush()
    flush()
    return seen


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


# A book added to Plex by hand completes a request waiting in any of these too (ReadMeABook HEAD);
# `downloading` is left alone (its own pipeline finishes it), as are the job-owned statuses.
MATCHED_STATUSES = (
    RequestStatus.DOWNLOADED,
    RequestStatus.AWAITING_SEARCH,
    RequestStatus.AWAITING_IMPORT,
    RequestStatus.WARN,
    RequestStatus.FAILED,
)


def matchable_statuses() -> tuple[RequestStatus, ...]:
    """MATCHED_STATUSES that the request state machine lets into `available` (state.TRANSITIONS)."""
    return tuple(status for status in MATCHED_STATUSES if allowed(status.value, RequestStatus.AVAILABLE))


def match_downloaded(log: JobLogger) -> list[dict]:
    """Match every request waiting in a matchable status against the whole library table; matches become
    `available`, their unfinished jobs (a queued search, a download's monitor) are cancelled."""
    statuses = matchable_statuses()
    pending = _waiting_requests(statuses)
    if not pending:
        return []
    hits = _matches(pending, library_index())
    matched = _apply_matches(hits, statuses, log)
    _cancel_unfinished_jobs([m["requestId"] for m in matched], log)
    return matched


def _waiting_requests(statuses: tuple[RequestStatus, ...]) -> list[Request]:
    return list(Request.select(Request, Audiobook).join(Audiobook)
                .where(Request.status.in_([s.value for s in statuses])))


def _matches(pending: list[Request], index: LibraryIndex) -> list[tuple[Request, Match]]:
    """The requests whose book is in the library, with the library item that matched."""
    books = [BookQuery(r.audiobook.title, r.audiobook.author, r.audiobook.narrator, r.audiobook.audible_asin)
             for r in pending]
    return [(request, found) for request, found in zip(pending, index.match_all(books), strict=True)
            if found is not None]


def _apply_matches(
    hits: list[tuple[Request, Match]], statuses: tuple[RequestStatus, ...], log: JobLogger
) -> list[dict]:
    """Make the matched requests available, one transaction per batch; returns those that were."""
    matched: list[dict] = []
    for start in range(0, len(hits), WRITE_BATCH):
        # one commit per batch, not two per request; the batch's "available" messages are queued after it
        with notifications.held_until_commit(), database.obj.atomic():
            made = [(request, found) for request, found in hits[start:start + WRITE_BATCH]
                    if _make_available(request, found, statuses)]
        for request, found in made:
            matched.append({"requestId": str(request.id), "title": request.audiobook.title,
                            "plexGuid": found.item.guid, "score": round(found.score, 1), "by": found.reason,
                            "from": request.status})
            log.info(f"'{request.audiobook.title}' is in Plex ({found.reason}, score {found.score:.0f}): "
                     f"available (was {request.status})", matched[-1])
    return matched


def _make_available(request: Request, found: Match, statuses: tuple[RequestStatus, ...]) -> bool:
    """Only from the status it was read in: a request that moved on meanwhile is left alone."""
    if not transition(
        request.id,
        RequestStatus.AVAILABLE,
        only_from=statuses,
        completed_at=utcnow(),
        error_message=None,
        search_attempts=0,
        download_attempts=0,
        import_attempts=0,
    ):
        return False
    Audiobook.update(plex_guid=found.item.guid, status=AudiobookStatus.AVAILABLE.value).where(
        Audiobook.id == request.audiobook_id).execute()
    return True


def _cancel_unfinished_jobs(request_ids: list[str], log: JobLogger) -> None:
    """The jobs still queued for requests that just became available: a search waiting to run, a
    download's monitor (a cancelled monitor row stops its polling). Called after the transitions, so a
    job cancelled here never belongs to a request that is still being worked on."""
    for start in range(0, len(request_ids), 500):
        jobs = (Job.select(Job.id, Job.rq_job_id, Job.type, Job.request)
                .where(Job.request.in_(request_ids[start:start + 500])
                       & Job.status.not_in(TERMINAL_JOB_STATUSES)))
        for job in jobs:
            if cancel_run(job, "The book is in the Plex library"):
                log.info(f"Cancelled {job.type} job {job.id} of request {job.request_id}: the book is in Plex")


def _remove_stale(library_id: str, seen: set[str], log: JobLogger) -> int:
    stale = [row.plex_guid for row in PlexLibrary.select(PlexLibrary.plex_guid)
             .where(PlexLibrary.plex_library_id == library_id) if row.plex_guid not in seen]
    for chunk in range(0, len(stale), 500):
        guids = stale[chunk:chunk + 500]
        books = list(Audiobook.select().where(Audiobook.plex_guid.in_(guids)))
        for book in books:
            for request in book.requests.where(Request.status == RequestStatus.AVAILABLE.value):
                transition(request.id, RequestStatus.DOWNLOADED, only_from=(RequestStatus.AVAILABLE,),
                           error_message="No longer found in the Plex library")
                log.warning(f"'{book.title}' left the Plex library: back to downloaded")
        Audiobook.update(plex_guid=None).where(Audiobook.plex_guid.in_(guids)).execute()
        PlexLibrary.delete().where(PlexLibrary.plex_guid.in_(guids)).execute()
    return len(stale)


@register(JobKind.SCAN_PLEX)
def process_scan(payload: dict) -> dict:
    log = create_job_logger(payload["jobId"], "ScanPlex")
    plex = _plex(log)
    if plex is None:
        return {"success": False, "skipped": True}
    client, library_id = plex
    library_id = str(payload.get("libraryId") or library_id)
    lock = get_redis().set(SCAN_LOCK, payload["jobId"], nx=True, ex=3600)
    if not lock:
        log.warning("Another library scan is running; this one is skipped")
        return {"success": False, "skipped": True, "reason": "scan already running"}
    try:
        seen = _upsert(client.albums(library_id), library_id, log)
        removed = _remove_stale(library_id, seen, log) if seen else 0  # an empty scan never empties the table
        matched = match_downloaded(log)
    finally:
        if get_redis().get(SCAN_LOCK) == payload["jobId"].encode():
            get_redis().delete(SCAN_LOCK)
    log.info(f"Scanned {len(seen)} items, removed {removed} stale, matched {len(matched)} requests")
    return {"success": True, "libraryId": library_id, "totalScanned": len(seen), "removed": removed,
            "matchedDownloads": len(matched)}

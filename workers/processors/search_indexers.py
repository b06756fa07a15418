"""search_indexers: Prowlarr search → ranking → download_torrent with the best result and alternates."""
from __future__ import annotations

from datetime import datetime

from app.audiobook_requests.blocklist import blocklist_for
from app.audiobook_requests.pipeline import download_payload, step
from app.audiobook_requests.state import RequestStatus, clear_search_backoff, transition
from app.config import get_settings
from app.integrations.errors import ServiceError
from app.integrations.prowlarr import ProwlarrClient
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.jobs.types import JobKind
from app.models import Request, utcnow
from app.pipeline.release_search import MAX_ALTERNATES, automatic_search, storable
from app.pipeline.search_backoff import describe_delay, search_delay
from workers.context import fail_request_if_final
from workers.processors.registry import register


@register(JobKind.SEARCH_INDEXERS)
def process_search(payload: dict) -> dict:
    request_id, book = payload["requestId"], payload["audiobook"]
    log = create_job_logger(payload["jobId"], "SearchIndexers")

    request, started = Request.get_or_none(Request.id == request_id), utcnow()
    if request is None or not transition(
        request_id,
        RequestStatus.SEARCHING,
        last_search_at=started,
        next_search_at=None,
        search_attempts=Request.search_attempts + 1,
    ):
        log.warning("Request is no longer waiting for a search; nothing to do")
        return {"success": False, "skipped": True}
    settings = get_settings()
    query = f"{book['title']} {book['author']}"
    log.info(f"Searching Prowlarr for {query!r}")
    try:
        releases = ProwlarrClient(settings.prowlarr_url, settings.prowlarr_api_key).search(query)
    except ServiceError as exc:
        fail_request_if_final(request_id, exc, log, "Search")
        raise
    releases, unstorable = storable(releases)
    for release, problem in unstorable:  # one odd result must not fail the search of the others
        log.warning(f"Skipped result {release.title[:200]!r} from {release.indexer[:100] or '?'}: {problem}")
    blocklist = blocklist_for(request_id)
    found = automatic_search(releases, blocklist, book["title"], book["author"])  # every result ranked before any cut
    log.info(f"{len(releases)} results, {found.seeded} with seeders, {found.blocked} blocklisted",
             {"top": [r.summary() for r in found.ranked[:3]]})
    usable = found.usable
    if not usable:
        return _wait_for_a_release(request_id, started, request.fruitless_searches + 1, len(releases), found.blocked,
                                   log)
    best, alternates = usable[0], usable[1:1 + MAX_ALTERNATES]
    job_id = add_job(JobKind.DOWNLOAD_TORRENT, download_payload(request_id, book, best.release,
                                                                [r.release for r in alternates]),
                     priority=step(JobKind.DOWNLOAD_TORRENT).priority)
    clear_search_backoff(request_id)
    log.info(f"Found and grabbed {best.release.title!r} from {best.release.indexer or 'an indexer'} "
             f"(score {best.score:.1f}, {len(alternates)} alternates); download job {job_id}")
    return {"success": True, "resultsCount": len(releases), "downloadJobId": job_id,
            "selectedTorrent": {"title": best.release.title, "score": round(best.score, 1),
                                "seeders": best.release.seeders}}


def _wait_for_a_release(request_id: str, started: datetime, fruitless: int, results: int, blocked: int, log) -> dict:
    """Nothing usable: awaiting_search until the back-off of this many fruitless searches in a row (counted
    from when this search started) is over."""
    delay = search_delay(fruitless)
    next_at = started + delay
    message = (f"No usable torrents found; next search at {next_at:%Y-%m-%d %H:%M} UTC "
               f"(in {describe_delay(delay)}). Will retry automatically.")
    if transition(
        request_id,
        RequestStatus.AWAITING_SEARCH,
        only_from=(RequestStatus.SEARCHING,),
        error_message=message,
        fruitless_searches=fruitless,
        next_search_at=next_at,
    ):
        log.warning(f"Nothing usable in {results} results ({blocked} blocklisted); fruitless search {fruitless} in a "
                    f"row, next search at {next_at:%Y-%m-%d %H:%M} UTC (in {describe_delay(delay)})",
                    {"fruitlessSearches": fruitless, "nextSearchAt": next_at.isoformat() + "Z"})
    else:
        log.warning("Nothing usable, and the request moved on meanwhile; left as it is")
    return {"success": False, "message": message, "resultsCount": results, "fruitlessSearches": fruitless,
            "nextSearchAt": next_at.isoformat() + "Z"}

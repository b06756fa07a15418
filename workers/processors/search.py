"""search_indexers: Prowlarr search → ranking → download_torrent with the best result and alternates."""
from __future__ import annotations

from app.audiobook_requests.blocklist import blocklist_for
from app.audiobook_requests.service import enqueue_search, least_recently_tried
from app.audiobook_requests.state import R, transition
from app.config import get_settings
from app.integrations.errors import ServiceError
from app.integrations.prowlarr import ProwlarrClient
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.jobs.types import Priority
from app.models import Request, utcnow
from app.pipeline.release_search import MAX_ALTERNATES, automatic_search, download_payload, storable
from workers.context import fail_request_if_final
from workers.processors import register


@register("search_indexers")
def process_search(payload: dict) -> dict:
    request_id, book = payload["requestId"], payload["audiobook"]
    log = create_job_logger(payload["jobId"], "SearchIndexers")

    if not transition(request_id, R.SEARCHING, last_search_at=utcnow(), search_attempts=Request.search_attempts + 1):
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
        message = "No usable torrents found. Will retry automatically."
        transition(request_id, R.AWAITING_SEARCH, only_from=(R.SEARCHING,), error_message=message)
        log.warning(message)
        return {"success": False, "message": message, "resultsCount": len(releases)}
    best, alternates = usable[0], usable[1:1 + MAX_ALTERNATES]
    job_id = add_job("download_torrent", download_payload(request_id, book, best.release,
                                                          [r.release for r in alternates]), priority=Priority.HIGH)
    log.info(f"Selected {best.release.title!r} (score {best.score:.1f}); download job {job_id}")
    return {"success": True, "resultsCount": len(releases), "downloadJobId": job_id,
            "selectedTorrent": {"title": best.release.title, "score": round(best.score, 1),
                                "seeders": best.release.seeders}}


# --- the retry of this step: retry_missing_torrents re-runs search_indexers --------------------------

@register("retry_missing_torrents")
def process_retry_missing(payload: dict) -> dict:
    """Awaiting-search requests, least recently searched first (never-searched first), at most 50 a run."""
    log = create_job_logger(payload["jobId"], "RetryMissingTorrents")
    batch = least_recently_tried(R.AWAITING_SEARCH, Request.last_search_at)
    jobs = [enqueue_search(request) for request in batch]
    log.info(f"Queued {len(jobs)} searches", {"requestIds": [str(r.id) for r in batch]})
    return {"success": True, "queued": len(jobs)}

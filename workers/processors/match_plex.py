"""match_plex (deprecated): scan_plex and plex_recently_added_check match downloaded requests."""
from __future__ import annotations

from app.audiobook_requests.state import RequestStatus
from app.jobs.logger import create_job_logger
from app.jobs.types import JobKind
from app.models import Request
from workers.processors.registry import register
from workers.processors.scan_plex import match_downloaded


@register(JobKind.MATCH_PLEX)
def process_match_plex(payload: dict) -> dict:
    log = create_job_logger(payload["jobId"], "MatchPlex")
    log.warning("match_plex is deprecated: scan_plex and plex_recently_added_check match downloaded requests")
    request = Request.get_or_none(Request.id == payload["requestId"])
    if request is None or request.status != RequestStatus.DOWNLOADED.value:
        return {"success": False, "skipped": True}
    return {"success": True, "matched": [m["requestId"] for m in match_downloaded(log)]}

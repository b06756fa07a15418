"""plex_recently_added_check: the newest items of the Plex library into plex_library, then the matcher of
scan_plex over the downloaded requests."""
from __future__ import annotations

from app.jobs.logger import create_job_logger
from app.jobs.types import JobKind
from workers.processors import register
from workers.processors.scan_plex import _plex, _upsert, match_downloaded


@register(JobKind.PLEX_RECENTLY_ADDED_CHECK)
def process_recently_added(payload: dict) -> dict:
    log = create_job_logger(payload["jobId"], "PlexRecentlyAdded")
    plex = _plex(log)
    if plex is None:
        return {"success": False, "skipped": True}
    client, library_id = plex
    seen = _upsert(client.recently_added(library_id, 10), library_id, log)
    matched = match_downloaded(log)
    return {"success": True, "checked": len(seen), "matchedDownloads": len(matched)}

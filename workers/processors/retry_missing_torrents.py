"""retry_missing_torrents: re-run search_indexers for the awaiting-search requests whose back-off is over."""
from __future__ import annotations

from app.audiobook_requests.search_schedule import due_for_search, waiting_count
from app.audiobook_requests.service import enqueue_search
from app.jobs.logger import create_job_logger
from app.jobs.types import JobKind
from app.models import utcnow
from workers.processors import register


@register(JobKind.RETRY_MISSING_TORRENTS)
def process_retry_missing(payload: dict) -> dict:
    """Awaiting-search requests whose back-off is over (app/audiobook_requests/search_schedule.py), longest
    overdue first, at most 50 a run; runs every 5 minutes."""
    log = create_job_logger(payload["jobId"], "RetryMissingTorrents")
    now = utcnow()
    batch = due_for_search(now)
    jobs = [enqueue_search(request) for request in batch]
    waiting = waiting_count(now)
    log.info(f"Queued {len(jobs)} searches; {waiting} requests wait for their next search",
             {"requestIds": [str(r.id) for r in batch], "waiting": waiting})
    return {"success": True, "queued": len(jobs), "waiting": waiting}

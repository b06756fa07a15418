"""Scheduled maintenance of the acquisition pipeline: re-search missing releases, remove seeded torrents."""
from __future__ import annotations

from app.audiobook_requests.service import enqueue_search
from app.audiobook_requests.state import R
from app.config import get_settings
from app.integrations.errors import ServiceError
from app.integrations.torrent import download_client
from app.jobs.logger import create_job_logger
from app.models import DownloadHistory, Request
from workers.processors import register

RETRY_BATCH = 50
CLEANUP_BATCH = 100


@register("retry_missing_torrents")
def process_retry_missing(payload: dict) -> dict:
    """Awaiting-search requests, least recently searched first (never-searched first), at most 50 a run."""
    log = create_job_logger(payload["jobId"], "RetryMissingTorrents")
    batch = list(Request.select().where(Request.status == R.AWAITING_SEARCH.value)
                 .order_by(Request.last_search_at.asc(nulls="first"), Request.created_at, Request.id)
                 .limit(RETRY_BATCH))
    jobs = [enqueue_search(request) for request in batch]
    log.info(f"Queued {len(jobs)} searches", {"requestIds": [str(r.id) for r in batch]})
    return {"success": True, "queued": len(jobs)}


@register("cleanup_seeded_torrents")
def process_cleanup_seeded(payload: dict) -> dict:
    """Remove torrent and files of `available` requests whose indexer's seeding time is reached."""
    log = create_job_logger(payload["jobId"], "CleanupSeededTorrents")
    settings = get_settings()
    rows = list(DownloadHistory.select(DownloadHistory, Request).join(Request)
                .where((Request.status == R.AVAILABLE.value) & DownloadHistory.selected
                       & (DownloadHistory.download_status == "completed"))
                .order_by(DownloadHistory.completed_at).limit(CLEANUP_BATCH))
    removed, kept = [], 0
    for row in rows:
        minutes = settings.seeding_minutes_for(row.indexer_name or "")
        if minutes <= 0:
            kept += 1
            continue
        try:
            client = download_client(row.download_client)
            status = client.get(row.download_client_id)
            if status is None:
                DownloadHistory.update(download_status="removed").where(DownloadHistory.id == row.id).execute()
                continue
            if status.seeding_seconds < minutes * 60:
                kept += 1
                continue
            client.remove(row.download_client_id, delete_files=True)
        except ServiceError as exc:
            log.warn(f"Could not check {row.torrent_name!r}: {exc}")
            continue
        DownloadHistory.update(download_status="removed").where(DownloadHistory.id == row.id).execute()
        removed.append(row.torrent_name)
        log.info(f"Removed {row.torrent_name!r} after seeding {status.seeding_seconds // 60} min (limit {minutes})")
    return {"success": True, "removed": len(removed), "kept": kept}

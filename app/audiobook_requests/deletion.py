"""Deleting a request (admin): a soft delete.

The request becomes `deleted` first (so nothing can lose the delete), then its unfinished jobs are
cancelled (a running one is fenced off: its token is cleared, so its writes are refused) and its torrents
are removed from the download client with their files kept. A torrent another request still uses stays.
A client failure leaves the request deleted and puts a warn event on its timeline (its newest job).

Deleting again answers 200 with `alreadyDeleted: true` and retries what is left: jobs still unfinished,
torrents not yet removed (e.g. the client was down the first time).
"""
from __future__ import annotations

import logging
from typing import Any

from app.audiobook_requests.service import get_request
from app.audiobook_requests.state import R, transition
from app.config import get_settings
from app.integrations.errors import ServiceError
from app.jobs.logger import create_job_logger
from app.jobs.service import cancel_run
from app.models import TERMINAL_JOB_STATUSES, DownloadHistory, DownloadStatus, Job, Request, status_values, utcnow
from app.pipeline.monitor_policy import TorrentUser, describe_holders, holders

log = logging.getLogger(__name__)
EVENT_CONTEXT = "RequestDeleted"


def delete_request(request_id: str) -> dict[str, Any]:
    request = get_request(request_id)
    was = request.status
    newly = transition(request.id, R.DELETED, error_message="Deleted by an admin")
    cancelled = [str(job.id) for job in Job.select().where(
        (Job.request == request.id) & Job.status.not_in(TERMINAL_JOB_STATUSES)) if cancel_run(job, "Request deleted")]
    removed, kept, warnings = _remove_torrents(request)
    timeline = _newest_job(request.id)
    events = create_job_logger(timeline, EVENT_CONTEXT)
    if newly:
        events.info(f"Request deleted by an admin (was {was}); {len(cancelled)} queued jobs cancelled, "
                    f"{len(removed)} torrents removed from the client (files kept)",
                    {"cancelledJobs": cancelled, "removedTorrents": removed, "keptTorrents": kept})
    for warning in warnings:
        events.warning(warning)
    return {"request": {"id": str(request.id), "status": R.DELETED.value}, "alreadyDeleted": not newly,
            "cancelledJobs": cancelled, "removedTorrents": removed, "keptTorrents": kept, "warnings": warnings}


def _newest_job(request_id: Any) -> str | None:
    job = Job.select(Job.id).where(Job.request == request_id).order_by(Job.created_at.desc()).first()
    return str(job.id) if job else None


def _other_users(download: DownloadHistory) -> list[TorrentUser]:
    """Other requests' rows for the same torrent (same client, same info hash)."""
    info_hash = (download.torrent_hash or download.download_client_id or "").lower()
    settings = get_settings()
    rows = (DownloadHistory.select(DownloadHistory.indexer_name, DownloadHistory.download_status, Request.id,
                                   Request.status).join(Request)
            .where((DownloadHistory.request != download.request_id)
                   & ((DownloadHistory.torrent_hash == info_hash) | (DownloadHistory.download_client_id == info_hash))
                   & ((DownloadHistory.download_client == download.download_client)
                      | DownloadHistory.download_client.is_null())))
    return [TorrentUser(str(row.request.id), row.request.status, row.download_status,
                        settings.seeding_minutes_for(row.indexer_name or "")) for row in rows]


def _remove_torrents(request: Request) -> tuple[list[str], list[str], list[str]]:
    """(removed, kept because another request uses them, warnings). Files are never deleted."""
    from app.integrations.torrent import download_client

    removed, kept, warnings = [], [], []
    downloads = DownloadHistory.select().where(
        (DownloadHistory.request == request.id) & DownloadHistory.download_client_id.is_null(False)
        & DownloadHistory.download_status.not_in(status_values(DownloadStatus.ENDED)))
    for download in downloads:
        info_hash = download.download_client_id
        others = holders(_other_users(download), 0)  # seeded 0 s: an available request seeding still holds it
        if others:
            kept.append(info_hash)
            create_job_logger(_newest_job(request.id), EVENT_CONTEXT).info(
                f"Kept torrent {info_hash} in the client: {describe_holders(others)} also uses it")
            continue
        try:
            download_client(download.download_client).remove(info_hash, delete_files=False)
        except ServiceError as exc:
            warnings.append(f"The torrent {info_hash} ({download.torrent_name or 'unnamed'}) could not be removed "
                            f"from {download.download_client}: {exc}. Remove it by hand, or delete the request "
                            f"again to retry")
            log.warning("request %s deleted, but torrent %s could not be removed: %s", request.id, info_hash, exc)
            continue
        DownloadHistory.update(download_status=DownloadStatus.REMOVED.value, updated_at=utcnow()).where(
            DownloadHistory.id == download.id).execute()
        removed.append(info_hash)
    return removed, kept, warnings

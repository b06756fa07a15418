"""retry_failed_imports: re-run organize_files for awaiting-import requests, from where the client says the
download is now."""
from __future__ import annotations

from app.audiobook_requests.pipeline import organize_payload, step
from app.audiobook_requests.service import least_recently_tried
from app.audiobook_requests.state import RequestStatus
from app.integrations.errors import ServiceError
from app.integrations.torrent import download_client
from app.jobs.logger import JobLogger, create_job_logger
from app.jobs.service import add_job
from app.jobs.types import JobKind
from app.models import DownloadHistory, Request, utcnow
from workers.processors.registry import register


@register(JobKind.RETRY_FAILED_IMPORTS)
def process_retry_failed_imports(payload: dict) -> dict:
    """awaiting_import requests, least recently tried first; the path is asked from the client first."""
    log = create_job_logger(payload["jobId"], "RetryFailedImports")
    batch = least_recently_tried(RequestStatus.AWAITING_IMPORT, Request.last_import_at)
    queued = sum(1 for request in batch if _retry_import(request, log))
    log.info(f"Queued {queued} imports")
    return {"success": True, "queued": queued}


def _retry_import(request: Request, log: JobLogger) -> bool:
    """Queue organize_files again for one request, from its selected download's current path."""
    Request.update(last_import_at=utcnow()).where(Request.id == request.id).execute()  # rotate even if skipped
    download = (DownloadHistory.select().where((DownloadHistory.request == request.id) & DownloadHistory.selected)
                .order_by(DownloadHistory.created_at.desc()).first())
    if download is None:
        log.warning(f"Request {request.id} has no download to import; skipped")
        return False
    path = _current_path(download, log)
    if not path:
        log.warning(f"Request {request.id}: no known download path; skipped")
        return False
    add_job(JobKind.ORGANIZE_FILES, organize_payload(str(request.id), str(request.audiobook_id), path),
            priority=step(JobKind.ORGANIZE_FILES).priority)
    return True


def _current_path(download: DownloadHistory, log: JobLogger) -> str | None:
    """Where the download is now, as the client reports it; the stored path when the client cannot say."""
    try:
        status = download_client(download.download_client).get(download.download_client_id or "")
        if status is not None and status.content_path:
            return status.content_path
    except ServiceError as exc:
        log.warning(f"Could not ask the download client for the current path ({exc}); using the stored one")
    return download.download_path

"""organize_files: copy the finished download into MEDIA_DIR; the request becomes `downloaded`."""
from __future__ import annotations

import errno
from pathlib import Path

from app.audiobook_requests.state import R, transition
from app.config import get_settings
from app.integrations.errors import PermanentServiceError
from app.jobs.errors import PermanentJobError
from app.jobs.logger import create_job_logger
from app.library.organizer import NoAudioFiles, organize
from app.library.paths import PathTemplateError, UnsafePathError, inside, target_dir
from app.models import Audiobook, Request, utcnow
from workers.context import is_last_attempt
from workers.processors import register

RETRYABLE_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM}


@register("organize_files")
def process_organize(payload: dict) -> dict:
    request_id = payload["requestId"]
    log = create_job_logger(payload["jobId"], "OrganizeFiles")
    settings = get_settings()
    if not settings.media_dir:
        raise PermanentServiceError("Organizer", "MEDIA_DIR must be set")
    if settings.organize_mode == "move" and not settings.download_dir:
        # load_settings refuses this at start; settings built in code get here: never delete unconfined files
        raise PermanentServiceError("Organizer", "ORGANIZE_MODE=move requires DOWNLOAD_DIR")
    if not transition(request_id, R.PROCESSING, progress=100):
        log.warn("Request is not waiting for an import; nothing to do")
        return {"success": False, "skipped": True}
    book = Audiobook.get_by_id(payload["audiobookId"])
    download_path = Path(payload["downloadPath"])
    media_dir = Path(settings.media_dir)
    read_root = Path(settings.download_dir) if settings.download_dir else None  # unset: reads not confined
    try:
        if read_root is not None and not inside(read_root, download_path):
            raise UnsafePathError(f"download path {download_path} is outside DOWNLOAD_DIR")
        target = target_dir(media_dir, settings.organize_path_template,
                            {"author": book.author, "title": book.title, "narrator": book.narrator,
                             "asin": book.audible_asin, "year": None})
        log.info(f"Organizing {download_path} into {target} ({settings.organize_mode})")
        result = organize(download_path, target, media_dir, settings.organize_mode, temp_tag=str(request_id),
                          read_root=read_root)
    except (NoAudioFiles, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in RETRYABLE_ERRNOS:
            # e.g. disk full, I/O error: the job's retries try again; after the last one the request
            # fails with this reason (app/jobs/callbacks.py), never before.
            log.error(f"Import failed: {exc}" + ("" if is_last_attempt() else " (will retry)"))
            raise
        return _retry_later(request_id, str(exc), log)
    except (UnsafePathError, PathTemplateError) as exc:
        # Retrying cannot help: the job fails at once and so does the request, with this reason.
        log.error(f"Refused: {exc}")
        raise PermanentJobError(f"Import refused: {exc}") from None
    for refused in result.refused:
        log.error(f"Refused file {refused}")
    for warning in result.warnings:
        log.warn(warning)
    Audiobook.update(file_path=str(result.target), status="completed", completed_at=utcnow(),
                     file_format=Path(result.audio_files[0]).suffix.lstrip(".").lower()).where(
        Audiobook.id == book.id).execute()
    transition(request_id, R.DOWNLOADED, error_message=None, completed_at=utcnow(), last_import_at=utcnow())
    log.info(f"Imported {len(result.copied)} file(s), {len(result.skipped)} already in place",
             {"target": str(result.target), "copied": result.copied, "skipped": result.skipped, "cover": result.cover})
    return {"success": True, "targetPath": str(result.target), "filesCount": len(result.audio_files),
            "audioFiles": result.audio_files, "coverArt": result.cover, "errors": result.refused}


def _retry_later(request_id: str, reason: str, log) -> dict:
    """awaiting_import with 'Retry n/max'; the max-th attempt (counting the first) → warn."""
    request = Request.get_by_id(request_id)
    attempts = request.import_attempts + 1
    if attempts >= request.max_import_retries:
        message = f"{reason}. Max retries ({request.max_import_retries}) exceeded. Manual retry available."
        transition(request_id, R.WARN, import_attempts=attempts, last_import_at=utcnow(), error_message=message)
        log.warn(message)
    else:
        message = f"{reason}. Retry {attempts}/{request.max_import_retries}"
        transition(request_id, R.AWAITING_IMPORT, import_attempts=attempts, last_import_at=utcnow(),
                   error_message=message)
        log.warn(f"{message}; Retry Failed Imports will try again")
    return {"success": False, "message": message, "importAttempts": attempts}

"""organize_files: copy the finished download into MEDIA_DIR; the request becomes `downloaded`.

The download path comes from the client and is translated by REMOTE_PATH_MAPPINGS first (one place for
every way a path gets here: the monitor, Retry Failed Imports, a manual retry, the reconciler). The
copies are tagged on the way (TAG_FILES, app/library/tags.py). After the import, the book's folder is
refreshed in Plex (by its name there: PLEX_PATH_MAPPINGS) and a Recently Added Check is queued a minute later.
"""
from __future__ import annotations

import errno
from pathlib import Path

from app.audiobook_requests.blocklist import block_release
from app.audiobook_requests.imports import record_import
from app.audiobook_requests.state import RequestStatus, transition
from app.config import Settings, get_settings
from app.errors import PermanentJobError
from app.integrations.errors import PermanentServiceError, ServiceError
from app.integrations.plex import PlexClient
from app.jobs import fence
from app.jobs.errors import EnqueueFailed
from app.jobs.logger import JobLogger, create_job_logger
from app.jobs.service import add_job
from app.jobs.types import JobKind
from app.library.organizer import NoAudioFiles, cover_candidates, organize
from app.library.paths import UNRESOLVABLE, PathTemplateError, UnsafePathError, inside, resolved, target_dir
from app.library.plex_paths import SETTING as PLEX_MAPPINGS_SETTING
from app.library.plex_paths import plan_refresh
from app.library.remote_paths import SETTING as MAPPINGS_SETTING
from app.library.remote_paths import to_local
from app.library.tags import CoverError, TagSet, book_tags, fetch_cover, first_cover, written_fields
from app.models import Audiobook, DownloadHistory, Request, utcnow
from workers.context import is_last_attempt
from workers.processors.registry import register

RETRYABLE_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM}
PLEX_REFRESH_TIMEOUT = 10.0  # Plex answers a refresh at once; a slow Plex must not hold the import job


@register(JobKind.ORGANIZE_FILES)
def process_organize(payload: dict) -> dict:
    request_id = payload["requestId"]
    log = create_job_logger(payload["jobId"], "OrganizeFiles")
    settings = get_settings()
    if not settings.media_dir:
        raise PermanentServiceError("Organizer", "MEDIA_DIR must be set")
    if settings.organize_mode == "move" and not settings.download_dir:
        # load_settings refuses this at start; settings built in code get here: never delete unconfined files
        raise PermanentServiceError("Organizer", "ORGANIZE_MODE=move requires DOWNLOAD_DIR")
    if not transition(request_id, RequestStatus.PROCESSING, progress=100):
        log.warning("Request is not waiting for an import; nothing to do")
        return {"success": False, "skipped": True}
    book = Audiobook.get_by_id(payload["audiobookId"])
    download_path = _local_path(payload["downloadPath"], settings, log)
    media_dir = Path(settings.media_dir)
    read_root = Path(settings.download_dir) if settings.download_dir else None  # unset: reads not confined
    try:
        if read_root is not None and not inside(read_root, download_path):
            raise UnsafePathError(_outside_message(payload["downloadPath"], download_path, read_root))
        target = target_dir(media_dir, settings.organize_path_template,
                            {"author": book.author, "title": book.title, "narrator": book.narrator,
                             "asin": book.audible_asin, "year": None})
        log.info(f"Organizing {download_path} into {target} ({settings.organize_mode})")
        tags = _book_tags(book, download_path, read_root, settings, log)
        result = organize(download_path, target, media_dir, settings.organize_mode, temp_tag=str(request_id),
                          read_root=read_root, tags=tags)
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
        log.warning(warning)
    if not record_import(book.id, file_path=str(result.target),
                         file_format=Path(result.audio_files[0]).suffix.lstrip(".").lower()):
        fence.ensure_current()  # LeaseLost: the successor imports; otherwise the book row is gone
    transition(request_id, RequestStatus.DOWNLOADED, error_message=None, completed_at=utcnow(), last_import_at=utcnow())
    log.info(f"Imported {len(result.copied)} file(s), {len(result.skipped)} already in place",
             {"target": str(result.target), "copied": result.copied, "skipped": result.skipped, "cover": result.cover})
    if result.tagged and tags is not None:
        log.info(f"Tagged {len(result.tagged)} file(s): {', '.join(written_fields(tags))}",
                 {"tagged": result.tagged, "coverSource": tags.cover.source if tags.cover else None})
    check_job_id = _refresh_plex(result.target, settings, log)
    return {"success": True, "targetPath": str(result.target), "filesCount": len(result.audio_files),
            "audioFiles": result.audio_files, "coverArt": result.cover, "errors": result.refused,
            "plexCheckJobId": check_job_id, "taggedFiles": result.tagged}


def _book_tags(book: Audiobook, download_path: Path, read_root: Path | None, settings: Settings,
               log: JobLogger) -> TagSet | None:
    """The tags for the library's copies, or None when files are not tagged (TAG_FILES=false, hardlinks).

    Cover: the best image in the download (cover/folder/art first, else the largest), else the book's
    cover_art_url; a cover that cannot be fetched is a warning and the files are tagged without one.
    Audiobook rows have no year: the year tag is omitted."""
    if not settings.tag_files:
        return None
    if settings.organize_mode == "hardlink":
        log.info("Tags not written: ORGANIZE_MODE=hardlink makes each library file the torrent's own file "
                 "(the same inode), and tagging it would change what the torrent seeds")
        return None
    cover = first_cover(cover_candidates(download_path, read_root))
    if cover is None and book.cover_art_url:
        try:
            cover = fetch_cover(book.cover_art_url)
        except CoverError as exc:
            log.warning(f"Cover not fetched from {book.cover_art_url} ({exc}); the files are tagged without one")
    return book_tags(book.title, book.author, book.narrator, year=None, cover=cover)


def _local_path(reported: str, settings: Settings, log: JobLogger) -> Path:
    """The client's content path as this machine sees it (REMOTE_PATH_MAPPINGS)."""
    local = to_local(reported, settings.remote_path_mappings)
    if local != reported:
        log.info(f"The client's path {reported} is {local} here ({MAPPINGS_SETTING})")
    return Path(local)


def _outside_message(reported: str, local: Path, read_root: Path) -> str:
    """Why a path outside DOWNLOAD_DIR is refused, with the setting that fixes the usual cause (a seedbox
    or container client whose folders have other names here); a symlink loop is said to be one."""
    shown = str(local) if str(local) == reported else f"{local} (the client reports {reported})"
    if resolved(local) is None:
        return f"download path {shown} {UNRESOLVABLE}"
    return (f"download path {shown} is outside DOWNLOAD_DIR ({read_root}). If the download client sees its "
            f"folders under other paths, map them with {MAPPINGS_SETTING}=client_path=local_path, e.g. "
            f"/downloads={read_root}")


def _refresh_plex(folder: Path, settings: Settings, log: JobLogger) -> str | None:
    """Refresh the book's folder in Plex, by the name Plex knows it by (PLEX_PATH_MAPPINGS), and queue a
    Recently Added Check a little later.

    A folder outside the section's Locations would scan nothing (Plex still answers 200): the whole section
    is refreshed instead, with a warning naming the setting. Returns the check job's id. Best effort: the
    files are imported whatever happens here, so a Plex that is down or refuses is a warning (the scheduled
    scans still find the book), never a failed import.
    """
    if not settings.plex_configured:
        return None
    client = PlexClient(settings.plex_url, settings.plex_token, timeout=PLEX_REFRESH_TIMEOUT)
    try:
        plan = plan_refresh(str(folder), settings.plex_path_mappings,
                            client.section_locations(settings.plex_library_id), settings.media_dir)
        client.refresh(settings.plex_library_id, plan.path)
    except ServiceError as exc:
        log.warning(f"Plex refresh of {folder} failed ({exc}); the scheduled library scans will find the book")
        return None
    if plan.warning:
        log.warning(plan.warning)
    scanned = "the whole library section" if plan.path is None else (
        plan.path if plan.path == str(folder) else f"{plan.path} ({folder} here, {PLEX_MAPPINGS_SETTING})")
    delay = settings.plex_refresh_check_delay_seconds
    try:
        job_id = add_job(JobKind.PLEX_RECENTLY_ADDED_CHECK, {}, delay=delay)
    except EnqueueFailed as exc:
        log.warning(f"Plex is refreshing {scanned}, but the Recently Added Check could not be queued ({exc})")
        return None
    log.info(f"Plex is refreshing {scanned}; Recently Added Check in {delay} s (job {job_id})",
             {"plexCheckJobId": job_id, "plexPath": plan.path})
    return job_id


def _retry_later(request_id: str, reason: str, log) -> dict:
    """awaiting_import with 'Retry n/max'; the max-th attempt (counting the first) → warn."""
    request = Request.get_by_id(request_id)
    attempts = request.import_attempts + 1
    if attempts >= request.max_import_retries:
        message = f"{reason}. Max retries ({request.max_import_retries}) exceeded. Manual retry available."
        if transition(
            request_id, RequestStatus.WARN, import_attempts=attempts, last_import_at=utcnow(), error_message=message
        ):
            _block_selected_release(request_id, message, log)
        log.warning(message)
    else:
        message = f"{reason}. Retry {attempts}/{request.max_import_retries}"
        transition(request_id, RequestStatus.AWAITING_IMPORT, import_attempts=attempts, last_import_at=utcnow(),
                   error_message=message)
        log.warning(f"{message}; Retry Failed Imports will try again")
    return {"success": False, "message": message, "importAttempts": attempts}


def _block_selected_release(request_id: str, reason: str, log: JobLogger) -> None:
    """An import that ended in `warn` blocklists its release (the selected download's name, hash and indexer):
    a search, automatic or interactive, never picks that release again for this request."""
    download = (DownloadHistory.select().where((DownloadHistory.request == request_id) & DownloadHistory.selected)
                .order_by(DownloadHistory.created_at.desc()).first())
    if download is None:
        return
    title = download.torrent_name or download.download_client_id or "unnamed release"
    if block_release(request_id, title=title, info_hash=download.torrent_hash or download.download_client_id,
                     indexer=download.indexer_name, reason=f"import failed: {reason}"):
        log.warning(f"Release {title!r} blocklisted for this request: its import failed for good")

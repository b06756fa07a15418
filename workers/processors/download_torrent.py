"""download_torrent: fetch the release, hand it to the download client, start monitoring.

The best release is tried first, then the alternates. A release that cannot be fetched or read is
skipped; when none is left, the job retries if any of them may work later (429, 5xx, an unreachable
indexer) and fails at once, naming every release and why, when all failed for good (a bad .torrent,
a 4xx, too many redirects). Prowlarr refusing the key or being unreachable ends the job right away.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from app.audiobook_requests import downloads
from app.audiobook_requests.pipeline import monitor_payload, step
from app.audiobook_requests.state import RELEASED_TORRENT as LET_GO
from app.audiobook_requests.state import RequestStatus, transition
from app.config import get_settings
from app.integrations.errors import PermanentServiceError, ServiceError, TransientServiceError
from app.integrations.prowlarr import SERVICE as PROWLARR
from app.integrations.prowlarr import ProwlarrClient, ReleaseFile
from app.integrations.torrent import download_client
from app.integrations.torrentfile import TorrentFileError, parse_magnet, read_torrent
from app.jobs import fence
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.jobs.types import JobKind
from app.library.paths import inside
from app.library.remote_paths import to_client, to_local
from app.models import DownloadStatus, Request, utcnow
from app.notifications import events as notifications
from app.pipeline.ranking import Release
from app.pipeline.torrent_placement import request_tags
from workers.context import fail_request_if_final
from workers.processors.registry import register

MONITOR_FIRST_DELAY = 3  # seconds: gives the client time to register the torrent (original's race fix)
_REASON_CHARS = 200


@dataclass(frozen=True)
class ReleaseFailure:
    """Why one candidate release could not be used."""

    title: str
    reason: str
    transient: bool


@dataclass(frozen=True)
class Fetched:
    file: ReleaseFile
    info_hash: str
    name: str


def ends_the_job(exc: Exception) -> bool:
    """A failure about Prowlarr itself, not about one release: trying the others cannot help now."""
    if not isinstance(exc, ServiceError) or exc.service != PROWLARR:
        return False
    return exc.status == 401 or (exc.transient and exc.status is None)


def release_failure(release: Release, exc: Exception) -> ReleaseFailure:
    transient = isinstance(exc, ServiceError) and exc.transient
    return ReleaseFailure(release.title, str(exc)[:_REASON_CHARS], transient)


def no_release_usable(failures: list[ReleaseFailure]) -> ServiceError:
    """The job's error once every candidate failed: retryable while any may work later, else permanent."""
    listed = "; ".join(f"{f.title[:120]!r} ({f.reason})" for f in failures)
    waiting = sum(1 for f in failures if f.transient)
    if waiting:
        return TransientServiceError(PROWLARR, f"{waiting} of {len(failures)} releases are temporarily "
                                               f"unavailable, none could be used: {listed}")
    return PermanentServiceError(PROWLARR, f"none of the {len(failures)} releases could be used: {listed}")


def fetch(prowlarr: ProwlarrClient, release: Release) -> Fetched:
    """The release's file and identity; ServiceError or TorrentFileError when it cannot be used."""
    link = release.download_url or release.magnet_url
    if not link:
        raise PermanentServiceError(PROWLARR, "the release has no download link")
    file = prowlarr.fetch_release(link)
    if file.torrent is not None:
        meta = read_torrent(file.torrent)
        return Fetched(file, meta.info_hash, meta.name)
    magnet = parse_magnet(file.magnet or "")
    return Fetched(file, magnet.info_hash, magnet.name or release.title)


@register(JobKind.DOWNLOAD_TORRENT)
def process_download(payload: dict) -> dict:
    request_id = payload["requestId"]
    log = create_job_logger(payload["jobId"], "DownloadTorrent")
    settings = get_settings()
    if not transition(request_id, RequestStatus.DOWNLOADING, progress=0):
        log.warning("Request is no longer searching; nothing to download")
        return {"success": False, "skipped": True}
    candidates = [Release.from_payload(payload["torrent"])]
    candidates += [Release.from_payload(t) for t in payload.get("alternateTorrents") or []]
    try:
        prowlarr = ProwlarrClient(settings.prowlarr_url, settings.prowlarr_api_key)
        client = download_client()
        failures: list[ReleaseFailure] = []
        for index, release in enumerate(candidates):
            try:
                fetched = fetch(prowlarr, release)
            except (ServiceError, TorrentFileError) as exc:
                if ends_the_job(exc):
                    raise
                failures.append(release_failure(release, exc))
                log.warning(f"Release {index + 1}/{len(candidates)} {release.title!r} unavailable: {exc}")
                continue
            info_hash, name = fetched.info_hash, fetched.name
            # A run that lost its lease while it fetched (paused past it) stops here: it never adds the
            # torrent nor records a download next to its successor's.
            fence.ensure_current()
            existing = client.get(info_hash)
            if existing is None:
                chosen = client.add(torrent=fetched.file.torrent, magnet=fetched.file.magnet,
                                    category=settings.download_client_category, tags=request_tags(request_id),
                                    save_path=_client_save_path(settings), name=name)
                log.info(f"Added {name!r} ({info_hash}) to {settings.download_client}, category "
                         f"{settings.download_client_category!r}" + (f", its save path {chosen}" if chosen else ""))
                _warn_if_imports_cannot_read(chosen, settings, log)
            else:
                log.info(f"{name!r} ({info_hash}) is already in {settings.download_client}; not added twice")
            # fenced in the same statement: a run that lost its lease while it added writes no record
            history_id = downloads.record_download(
                request_id, indexer_name=release.indexer, torrent_name=release.title, torrent_hash=info_hash,
                torrent_size_bytes=release.size, magnet_link=fetched.file.magnet, torrent_url=release.download_url,
                seeders=release.seeders, leechers=release.leechers, selected=True,
                download_client=settings.download_client, download_client_id=info_hash,
                download_status=DownloadStatus.DOWNLOADING.value, started_at=utcnow())
            _take_back_if_let_go(request_id, history_id, info_hash, client, added=existing is None, log=log)
            monitor_id = add_job(JobKind.MONITOR_DOWNLOAD, monitor_payload(request_id, str(history_id), info_hash,
                                                                           settings.download_client),
                                 priority=step(JobKind.MONITOR_DOWNLOAD).priority, delay=MONITOR_FIRST_DELAY,
                                 poll_batched=True)  # the first poll is a poll batch's too (PostgreSQL)
            notifications.request_grabbed(request_id, name, release.indexer, settings.download_client)
            return {"success": True, "infoHash": info_hash, "torrent": name, "monitorJobId": monitor_id}
        raise no_release_usable(failures)
    except ServiceError as exc:
        fail_request_if_final(request_id, exc, log, "Download")
        raise


def _take_back_if_let_go(request_id: str, history_id, info_hash: str, client, *, added: bool, log) -> None:
    """The request was deleted or cancelled while this run added its torrent (after the fence check, before
    the row existed, so the delete found nothing to remove): this run takes the torrent back out (files kept)
    and raises LeaseLost. A run that lost its lease to a successor leaves the torrent to the successor.
    `history_id` is None when the fenced record was refused (the run had lost its job already)."""
    try:
        if history_id is None:
            raise fence.LeaseLost(f"request {request_id}: the download record was refused (the run lost its job)")
        fence.ensure_current()
    except fence.LeaseLost:
        request = Request.get_or_none(Request.id == request_id)
        if request is not None and request.status in LET_GO:
            if added:
                client.remove(info_hash, delete_files=False)
            if history_id is not None:
                downloads.mark_removed(history_id)
            log.warning(f"The request was {request.status} while its torrent was added: torrent removed "
                        f"again (files kept)")
        raise


def _warn_if_imports_cannot_read(client_folder: str | None, settings, log) -> None:
    """The category's own save path lies outside DOWNLOAD_DIR: the import will refuse this download, so the
    admin hears it now rather than when the book has finished downloading. A relative category path
    (under the client's default save path, unknown here) cannot be checked."""
    if not client_folder or not settings.download_dir:
        return
    if not (client_folder.startswith("/") or PureWindowsPath(client_folder).is_absolute()):
        return
    local = to_local(client_folder, settings.remote_path_mappings)
    if not local.startswith("/") or not inside(Path(settings.download_dir), Path(local)):
        log.warning(f"The category {settings.download_client_category!r} saves to {client_folder}, outside "
                    f"DOWNLOAD_DIR ({settings.download_dir}): the import will refuse this download. Move the "
                    f"category's save path inside DOWNLOAD_DIR, or map it with REMOTE_PATH_MAPPINGS")


def _client_save_path(settings) -> str | None:
    """DOWNLOAD_DIR as the torrent client names it (REMOTE_PATH_MAPPINGS), or None for its default."""
    return to_client(settings.download_dir, settings.remote_path_mappings) if settings.download_dir else None

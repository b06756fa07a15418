"""A request letting go of its torrents (delete, cancel, an admin's swap), and an admin removing kept ones now.

The rule is app/pipeline/seeding.py's `let_go`: a finished torrent stays in the client, seeding until its
indexer's limit (its row becomes `seeding`, which cleanup_seeded_torrents reads); an unfinished one is removed
at once with its partial files; a torrent another row still needs is left alone; one no longer in the client
is marked removed. Each outcome is an event on the request's timeline. A client that cannot be reached leaves
the row as it was (a second delete retries it) and gives a warning.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from app.audiobook_requests import downloads
from app.audiobook_requests.blocklist import block_release
from app.config import get_settings
from app.integrations.errors import ServiceError
from app.integrations.torrent import TorrentStatus, download_client
from app.jobs.logger import JobLogger
from app.models import DownloadHistory, DownloadStatus, Job, Request, status_values, utcnow
from app.pipeline.monitor_policy import TorrentUser, describe_holders, holders
from app.pipeline.seeding import LetGo, let_go, seeding_until

log = logging.getLogger(__name__)

# Rows a request still holds in the client: not ended, and not already kept seeding for the tracker.
_LET_GO_ALREADY = status_values(DownloadStatus.ENDED | {DownloadStatus.SEEDING})


@dataclass
class Released:
    """What letting go of (or removing) a request's torrents did, by info hash."""

    removed: list[str] = field(default_factory=list)   # out of the client, with their files
    seeding: list[str] = field(default_factory=list)   # finished: kept seeding until their limit
    kept: list[str] = field(default_factory=list)      # another request still uses them
    warnings: list[str] = field(default_factory=list)  # the client could not be reached

    def to_dict(self) -> dict[str, list[str]]:
        return {"removedTorrents": self.removed, "seedingTorrents": self.seeding, "keptTorrents": self.kept,
                "warnings": self.warnings}


def timeline_job(request_id: Any) -> str | None:
    """The request's newest job: events about the request as a whole go on its timeline there."""
    job = Job.select(Job.id).where(Job.request == request_id).order_by(Job.created_at.desc()).first()
    return str(job.id) if job else None


def torrent_users(download: DownloadHistory) -> list[TorrentUser]:
    """Every other download_history row of the same torrent (same client, same info hash), whichever request
    it belongs to (a re-opened request may have fetched the same torrent again)."""
    info_hash = (download.torrent_hash or download.download_client_id or "").lower()
    settings = get_settings()
    rows = (DownloadHistory.select(DownloadHistory.indexer_name, DownloadHistory.download_status, Request.id,
                                   Request.status).join(Request)
            .where((DownloadHistory.id != download.id)
                   & ((DownloadHistory.torrent_hash == info_hash) | (DownloadHistory.download_client_id == info_hash))
                   & ((DownloadHistory.download_client == download.download_client)
                      | DownloadHistory.download_client.is_null())))
    users = []
    for row in rows:
        limit = settings.seeding_limit_for(row.indexer_name)
        users.append(TorrentUser(str(row.request.id), row.request.status, row.download_status, limit.minutes,
                                 limit.ratio))
    return users


def release_torrents(request_id: Any, events: JobLogger, *, block_reason: str | None = None) -> Released:
    """Let go of every torrent the request still holds. With `block_reason` (an admin's swap) each release is
    also blocklisted for the request, so no later search picks it again."""
    released = Released()
    downloads = DownloadHistory.select().where(
        (DownloadHistory.request == request_id) & DownloadHistory.download_client_id.is_null(False)
        & DownloadHistory.download_status.not_in(_LET_GO_ALREADY))
    for download in downloads:
        if block_reason:
            block_release(request_id, title=download.torrent_name or download.download_client_id,
                          info_hash=download.torrent_hash or download.download_client_id,
                          indexer=download.indexer_name, reason=block_reason)
        try:
            _let_go_one(download, events, released)
        except ServiceError as exc:
            info_hash = download.download_client_id
            released.warnings.append(
                f"The torrent {info_hash} ({download.torrent_name or 'unnamed'}) could not be removed from "
                f"{download.download_client}: {exc}. Remove it by hand, or delete the request again to retry")
            log.warning("request %s let go of torrent %s, but the client failed: %s", request_id, info_hash, exc)
    for warning in released.warnings:
        events.warning(warning)
    return released


def _let_go_one(download: DownloadHistory, events: JobLogger, released: Released) -> None:
    info_hash, name = download.download_client_id, download.torrent_name or download.download_client_id
    client = download_client(download.download_client)
    status = client.get(info_hash)
    others = holders(torrent_users(download), status.seeding_seconds, status.ratio) if status else []
    # finished: the client has every byte, or the monitor saw it complete (a recheck may be under way now)
    finished = status is not None and (status.progress >= 1 or download.download_status == DownloadStatus.COMPLETED)
    decision = let_go(status is not None, finished, bool(others))
    if decision is LetGo.SHARED:
        released.kept.append(info_hash)
        events.info(f"Kept torrent {info_hash} in the client: {describe_holders(others)} also uses it")
        return
    if decision is LetGo.KEEP_SEEDING:
        assert status is not None
        _mark_seeding(download, status)
        released.seeding.append(info_hash)
        events.info(f"Kept {name!r} ({info_hash}) in {download.download_client}: it finished, so it is "
                    f"{describe_seeding(DownloadHistory.get_by_id(download.id))}, then cleanup_seeded_torrents "
                    f"removes it with its files (an admin can remove it now)")
        return
    if decision is LetGo.REMOVE_WITH_FILES:
        client.remove(info_hash, delete_files=True)
        released.removed.append(info_hash)
        events.info(f"Removed the unfinished {name!r} ({info_hash}, {status.progress if status else 0:.0%}) from "
                    f"{download.download_client} with its partial files")
    else:
        events.info(f"{name!r} ({info_hash}) is no longer in {download.download_client}; marked removed")
    mark_removed(download)


def _mark_seeding(download: DownloadHistory, status: TorrentStatus) -> None:
    # the time it finished, when the monitor never saw it: from the client's own seeding clock
    completed_at = download.completed_at or utcnow() - timedelta(seconds=status.seeding_seconds)
    downloads.mark_seeding(download.id, completed_at=completed_at,
                           download_path=download.download_path or status.content_path)


def mark_removed(download: DownloadHistory) -> None:
    downloads.mark_removed(download.id)


def describe_seeding(download: DownloadHistory) -> str:
    """'seeding until … (<indexer>: <limit>)' for a kept torrent's row."""
    limit = get_settings().seeding_limit_for(download.indexer_name)
    indexer = download.indexer_name or "unknown indexer"
    return f"{seeding_until(limit, download.completed_at)} ({indexer}: {limit.describe()})"


def seeding_torrents(request_ids: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """The torrents kept seeding for these requests, by request id (the pages and the API show them)."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not request_ids:
        return found
    rows = DownloadHistory.select().where(DownloadHistory.request.in_(request_ids)
                                          & (DownloadHistory.download_status == DownloadStatus.SEEDING.value))
    for row in rows.order_by(DownloadHistory.completed_at):
        found.setdefault(str(row.request_id), []).append({
            "infoHash": row.download_client_id, "torrentName": row.torrent_name, "indexer": row.indexer_name,
            "completedAt": row.completed_at.isoformat() + "Z" if row.completed_at else None,
            "seeding": describe_seeding(row)})
    return found


def remove_seeding_now(request_id: Any, events: JobLogger, download_id: Any = None) -> Released:
    """An admin's "remove now": the request's kept torrents (or only the row `download_id`, the Activity
    page's Remove) go at once with their files, limit or not. A torrent another request still needs is kept
    (its files are that request's too)."""
    released = Released()
    rows = DownloadHistory.select().where((DownloadHistory.request == request_id)
                                          & (DownloadHistory.download_status == DownloadStatus.SEEDING.value))
    if download_id is not None:
        rows = rows.where(DownloadHistory.id == download_id)
    for download in rows:
        info_hash = download.download_client_id
        try:
            client = download_client(download.download_client)
            status = client.get(info_hash)
            others = holders(torrent_users(download), status.seeding_seconds, status.ratio) if status else []
            if others:
                released.kept.append(info_hash)
                events.info(f"Kept torrent {info_hash} in the client: {describe_holders(others)} also uses it")
                continue
            if status is not None:
                client.remove(info_hash, delete_files=True)
        except ServiceError as exc:
            released.warnings.append(f"The torrent {info_hash} could not be removed from "
                                     f"{download.download_client}: {exc}. Try again later")
            continue
        mark_removed(download)
        released.removed.append(info_hash)
        events.info(f"Removed {download.torrent_name or info_hash!r} ({info_hash}) and its files now, as an "
                    f"admin asked (it was {describe_seeding(download)})")
    for warning in released.warnings:
        events.warning(warning)
    return released

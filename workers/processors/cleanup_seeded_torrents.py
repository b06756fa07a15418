"""cleanup_seeded_torrents: remove the torrents (with their files) that seeded long enough for their indexer."""
from __future__ import annotations

from app.audiobook_requests.state import RequestStatus
from app.audiobook_requests.torrents import mark_removed, torrent_users
from app.config import get_settings
from app.integrations.errors import ServiceError
from app.integrations.torrent import download_client
from app.jobs.logger import create_job_logger
from app.jobs.types import JobKind
from app.models import DownloadHistory, DownloadStatus, Request
from app.pipeline.monitor_policy import describe_holders, holders
from app.pipeline.seeding import SeedingLimit
from workers.processors.registry import register

CLEANUP_BATCH = 100  # rows read per page; every page is read each run


def _candidates():
    """download_history rows cleanup may remove: the selected, completed download of an `available` request,
    and every torrent kept seeding after its request let go of it (deleted, cancelled, swapped: `seeding`)."""
    return (DownloadHistory.select(DownloadHistory, Request).join(Request)
            .where(((Request.status == RequestStatus.AVAILABLE.value) & DownloadHistory.selected
                    & (DownloadHistory.download_status == DownloadStatus.COMPLETED.value))
                   | (DownloadHistory.download_status == DownloadStatus.SEEDING.value)))


def _indexers_with_a_seeding_limit(settings) -> list[str]:
    """Indexer names (as stored) of candidate rows with a seeding limit (INDEXER_SEEDING_MINUTES or
    INDEXER_SEEDING_RATIO). Rows of the other indexers (seed forever, or not configured) will never be removed
    under the current settings: they are not read at all, so however many there are they never hold back the
    rows behind them."""
    names = (_candidates().select(DownloadHistory.indexer_name).distinct()
             .where(DownloadHistory.indexer_name.is_null(False)).tuples())
    return [name for (name,) in names if not settings.seeding_limit_for(name).forever]


def _pages(indexers: list[str]):
    """Every candidate row of these indexers, in pages by id (keyset): each run goes through all of them, and
    rows marked `removed` meanwhile simply drop out of the next page."""
    last_id = None
    while True:
        query = _candidates().where(DownloadHistory.indexer_name.in_(indexers))
        if last_id is not None:
            query = query.where(DownloadHistory.id > last_id)
        page = list(query.order_by(DownloadHistory.id).limit(CLEANUP_BATCH))
        yield from page
        if len(page) < CLEANUP_BATCH:
            return
        last_id = page[-1].id


@register(JobKind.CLEANUP_SEEDED_TORRENTS)
def process_cleanup_seeded(payload: dict) -> dict:
    """Remove torrent and files of `available` requests, and of torrents kept seeding for deleted, cancelled or
    swapped-out downloads, once their indexer's seeding limit is reached, unless another request still needs the
    same torrent. Goes through every candidate each run; a removed (or vanished)
    torrent's row is marked `removed` and never read again."""
    log = create_job_logger(payload["jobId"], "CleanupSeededTorrents")
    settings = get_settings()
    indexers = _indexers_with_a_seeding_limit(settings)
    seed_forever = _candidates().count() - _candidates().where(DownloadHistory.indexer_name.in_(indexers)).count()
    removed, seeding, shared, unreachable = [], 0, 0, 0
    for row in _pages(indexers):
        outcome = _clean_one(row, settings.seeding_limit_for(row.indexer_name), log)
        if outcome == "removed":
            removed.append(row.torrent_name)
        elif outcome == "seeding":
            seeding += 1
        elif outcome == "shared":
            shared += 1
        elif outcome == "unreachable":
            unreachable += 1
    kept = seed_forever + seeding + shared + unreachable
    log.info(f"Removed {len(removed)} torrents; kept {kept} ({seed_forever} seed forever, {seeding} still seeding, "
             f"{shared} used by another request, {unreachable} not checked)",
             {"removed": removed, "seedForever": seed_forever, "seeding": seeding, "shared": shared,
              "unreachable": unreachable})
    return {"success": True, "removed": len(removed), "kept": kept}


def _clean_one(row: DownloadHistory, limit: SeedingLimit, log) -> str:
    """One candidate: 'removed', 'gone' (no longer in the client), 'seeding', 'shared' or 'unreachable'."""
    info_hash = row.download_client_id
    try:
        client = download_client(row.download_client)
        status = client.get(info_hash)
        if status is None:
            mark_removed(row)
            log.info(f"{row.torrent_name!r} ({info_hash}) is no longer in {row.download_client}; marked removed")
            return "gone"
        seeded = f"seeded {status.seeding_seconds // 60} min, ratio {status.ratio:.2f} (limit {limit.describe()})"
        if not limit.reached(status.seeding_seconds, status.ratio):
            return "seeding"
        others = holders(torrent_users(row), status.seeding_seconds, status.ratio)
        if others:
            log.info(f"Kept {row.torrent_name!r} ({info_hash}) although it {seeded}: {describe_holders(others)} "
                     f"also uses this torrent", {"infoHash": info_hash, "sharedWith": [u.request_id for u in others]})
            return "shared"
        client.remove(info_hash, delete_files=True)
    except ServiceError as exc:
        log.warning(f"Could not check {row.torrent_name!r}: {exc}")
        return "unreachable"
    mark_removed(row)
    log.info(f"Removed {row.torrent_name!r} ({info_hash}) and its files: it {seeded}"
             + (f"; its request is {row.request.status}" if row.download_status == DownloadStatus.SEEDING else ""))
    return "removed"

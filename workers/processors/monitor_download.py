"""monitor_download: one jobs row per download, polling itself until the download completes."""
from __future__ import annotations

import time
from dataclasses import replace

from app.audiobook_requests import downloads
from app.audiobook_requests.blocklist import block_release
from app.audiobook_requests.pipeline import organize_payload, step
from app.audiobook_requests.service import enqueue_search
from app.audiobook_requests.state import RequestStatus, transition, update_progress
from app.config import get_settings
from app.integrations import torrent_snapshot
from app.integrations.errors import PermanentServiceError, ServiceError, TransientServiceError
from app.integrations.torrent import TorrentStatus, download_client
from app.jobs import fence
from app.jobs.errors import EnqueueFailed
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.jobs.types import JobKind
from app.models import DownloadHistory, DownloadStatus, Request, utcnow
from app.pipeline.download_state import DownloadState, counts_toward_stall
from app.pipeline.monitor_policy import (
    MAX_CONNECTION_FAILURES,
    PollOutcome,
    PollState,
    StallRemoval,
    TorrentUser,
    decide_poll,
    describe_holders,
    holders,
    reconnect_delay,
    snapshot_max_age,
    stall_removal,
)
from app.redis_connection import get_redis
from workers.context import Reschedule, is_last_attempt
from workers.processors.registry import register

LOOKUP_WAITS = (0.5, 1.0, 2.0)  # in-process retries of the torrent look-up


def _lookup(client, info_hash: str, log) -> TorrentStatus | None:
    """The torrent, retried in-process (0.5 s, 1 s, 2 s) when missing or the client is unreachable."""
    last_error: Exception | None = None
    for attempt, wait in enumerate((*LOOKUP_WAITS, None)):
        try:
            status = client.get(info_hash)
            if status is not None:
                return status
            last_error = None
        except TransientServiceError as exc:
            last_error = exc
        if wait is not None:
            fence.checkpoint()  # a stopped run does not wait for the next try
            log.warning(f"Torrent {info_hash} {'unreachable' if last_error else 'not found'}; "
                     f"retrying in {wait:g} s (try {attempt + 1}/{len(LOOKUP_WAITS) + 1})")
            time.sleep(wait)
    if last_error is not None:
        raise last_error
    return None


def _poll(client_kind: str, info_hash: str, settings, log) -> TorrentStatus | None:
    """The torrent's status from the shared snapshot of the client (one call per tick for every download,
    app/integrations/torrent_snapshot.py); missing from it, or no snapshot to be had, it is looked up on its
    own, with the in-process retries."""
    client = download_client(client_kind)
    reading = torrent_snapshot.read(get_redis(), client_kind, info_hash, client=lambda: client,
                                    category=settings.download_client_category,
                                    monitored=lambda: monitored_hashes(client_kind),
                                    max_age=snapshot_max_age(settings.monitor_poll_seconds))
    return reading.status or _lookup(client, info_hash, log)


def monitored_hashes(client_kind: str) -> list[str]:
    """The info hashes of every download `client_kind` is downloading for a request (what a snapshot covers)."""
    rows = (
        DownloadHistory.select(DownloadHistory.download_client_id)
        .join(Request)
        .where(
            (Request.status == RequestStatus.DOWNLOADING.value)
            & (DownloadHistory.download_client == client_kind)
            & DownloadHistory.download_status.not_in(downloads.SETTLED)
            & DownloadHistory.download_client_id.is_null(False)
        )
    )
    return sorted({row.download_client_id.lower() for row in rows})


def torrent_users(client_kind: str, info_hash: str, request_id) -> list[TorrentUser]:
    """Every other request's download_history row for this torrent (same client, same info hash)."""
    settings = get_settings()
    rows = (DownloadHistory.select(DownloadHistory.indexer_name, DownloadHistory.download_status, Request.id,
                                   Request.status)
            .join(Request)
            .where((DownloadHistory.torrent_hash == info_hash.lower()) & (DownloadHistory.request != request_id)
                   & ((DownloadHistory.download_client == client_kind) | DownloadHistory.download_client.is_null())))
    return [TorrentUser(request_id=str(row.request.id), request_status=row.request.status,
                        download_status=row.download_status,
                        seeding_minutes=settings.seeding_minutes_for(row.indexer_name or ""))
            for row in rows]


@register(JobKind.MONITOR_DOWNLOAD)
def process_monitor(payload: dict) -> dict | Reschedule:
    """Look up the request and the torrent, decide with app/pipeline/monitor_policy.py, apply the outcome."""
    request_id, info_hash = payload["requestId"], payload["downloadClientId"]
    log = create_job_logger(payload["jobId"], "MonitorDownload")
    settings = get_settings()
    request = Request.get_or_none(Request.id == request_id)
    if request is None or request.status != RequestStatus.DOWNLOADING.value:
        log.info(f"Request is {request.status if request else 'gone'}; monitoring stops")
        return {"success": False, "stopped": True}
    now = utcnow()
    poll = PollState.from_payload(payload)
    try:
        status = _poll(payload["downloadClient"], info_hash, settings, log)
        if status is None:
            raise TransientServiceError(payload["downloadClient"], f"torrent {info_hash} not found")
    except TransientServiceError as exc:
        failures = poll.connection_failures + 1
        if failures < MAX_CONNECTION_FAILURES:
            delay = reconnect_delay(failures, settings.monitor_poll_seconds)
            log.warning(f"{exc}; transient ({failures}/{MAX_CONNECTION_FAILURES}), next poll in {delay:g} s")
            return Reschedule(delay, replace(poll, connection_failures=failures).to_payload())
        if is_last_attempt():
            _fail(request_id, payload, f"Download lost: {exc}")
        raise
    except PermanentServiceError as exc:
        _fail(request_id, payload, str(exc))
        raise
    fence.checkpoint()  # stopped while the client answered: apply nothing
    percent = int(status.progress * 100)
    update_progress(request_id, percent)
    if status.state is DownloadState.COMPLETE:
        return _complete(request_id, payload, status, log)
    if status.state is DownloadState.FAILED:
        reason = f"the client reports an error: {status.error or status.raw_state}"
        search_job = _blocklist_and_search_again(request_id, payload, status, reason, log, remove=False)
        return {"success": False, "failed": True, "state": status.raw_state, "searchJobId": search_job}

    if not downloads.set_client_state(payload["downloadHistoryId"], DownloadStatus.of(status.state)):
        fence.ensure_current()  # LeaseLost when a successor owns the job; else the row was settled meanwhile
    decision = decide_poll(poll, now, percent=percent, downloaded=status.downloaded, progress=status.progress,
                           allowed=counts_toward_stall(status.state),
                           stall_limit_seconds=settings.download_stall_limit_seconds,
                           base_delay=settings.monitor_poll_seconds)
    if decision.log_progress:
        log.info(f"Downloading: {percent}% ({status.raw_state})",
                 {"progress": percent, "speed": status.download_speed, "eta": status.eta, "state": status.raw_state})
    if decision.clock_held:
        log.info(f"Torrent is {status.state.value} ({status.raw_state}): not allowed to download, so the stall "
                 f"clock is held until it is allowed again")
    if decision.outcome is PollOutcome.STALLED:
        reason = (f"no progress for {int(decision.motionless)} s (limit {settings.download_stall_limit_seconds} s, "
                  f"state {status.raw_state}, {percent}%)")
        search_job = _blocklist_and_search_again(request_id, payload, status, reason, log, remove=True)
        return {"success": False, "stalled": True, "reason": reason, "searchJobId": search_job}
    return Reschedule(decision.delay, decision.poll.to_payload())


def _complete(request_id: str, payload: dict, status: TorrentStatus, log) -> dict:
    if not downloads.mark_completed(payload["downloadHistoryId"], status.content_path):
        fence.ensure_current()  # LeaseLost: the successor completes it
    update_progress(request_id, 100)
    request = Request.get_by_id(request_id)
    organize = organize_payload(request_id, str(request.audiobook_id), status.content_path)
    job_id = add_job(JobKind.ORGANIZE_FILES, organize, priority=step(JobKind.ORGANIZE_FILES).priority)
    log.info(f"Download complete: {status.content_path}; organize job {job_id}")
    return {"success": True, "completed": True, "progress": 100, "downloadPath": status.content_path,
            "organizeJobId": job_id}


def _blocklist_and_search_again(request_id: str, payload: dict, status: TorrentStatus, reason: str, log, *,
                                remove: bool) -> str | None:
    """A stalled or errored download: blocklist its release, back to awaiting_search and search again at once
    (the next best release is grabbed if there is one). Returns the search's job id (None when the request
    moved on meanwhile, or Redis refused the job: then retry_missing_torrents searches within 5 minutes,
    since next_search_at is now)."""
    history = DownloadHistory.get_by_id(payload["downloadHistoryId"])
    # The fenced end of the row comes first and claims the rest: a run that lost its job (frozen past its lease
    # and resumed) removes no torrent and blocklists nothing (LeaseLost), and neither does a second poll.
    if not downloads.mark_failed(history.id, reason):
        fence.ensure_current()
        log.warning(f"Download {history.id} had already ended; nothing removed or blocklisted")
        return None
    if remove:
        _remove_stalled(request_id, payload["downloadClient"], status, log)
    block_release(request_id, title=history.torrent_name or status.name, info_hash=status.info_hash,
                  indexer=history.indexer_name, reason=reason)
    what = "stalled" if remove else "failed"
    if not transition(
        request_id,
        RequestStatus.AWAITING_SEARCH,
        only_from=(RequestStatus.DOWNLOADING,),
        next_search_at=utcnow(),
        error_message=f"Download {what} ({reason}); release blocklisted, searching again",
    ):
        log.warning(f"Download {what}: {reason}; release blocklisted, but the request moved on: no new search")
        return None
    try:
        job_id = enqueue_search(Request.get_by_id(request_id))
    except EnqueueFailed as exc:
        log.warning(f"Download {what}: {reason}; release blocklisted, request awaiting_search; the search could "
                    f"not be queued now ({exc}): Retry Missing Torrents runs it within 5 minutes")
        return None
    log.warning(f"Download {what}: {reason}; release blocklisted, request back to awaiting_search and searched "
                f"again now (search job {job_id})", {"searchJobId": job_id})
    return job_id


def _remove_stalled(request_id: str, client_kind: str, status: TorrentStatus, log) -> None:
    """Remove a stalled torrent safely: its partial files go too only when nobody else uses the torrent."""
    others = holders(torrent_users(client_kind, status.info_hash, request_id), status.seeding_seconds)
    decision = stall_removal(status.progress, others)
    if decision is StallRemoval.LEAVE:
        log.warning(f"Stalled torrent {status.info_hash} left in {client_kind} with its files: "
                 f"{describe_holders(others)} also uses it",
                 {"infoHash": status.info_hash, "sharedWith": [u.request_id for u in others]})
        return
    with_files = decision is StallRemoval.WITH_FILES
    try:
        download_client(client_kind).remove(status.info_hash, delete_files=with_files)
    except ServiceError as exc:
        log.warning(f"Could not remove the stalled torrent: {exc}")
        return
    log.info(f"Removed the stalled torrent {status.info_hash} from {client_kind} "
             + ("with its partial files" if with_files else f"but kept its files (progress {status.progress:.0%})"))


def _fail(request_id: str, payload: dict, message: str) -> None:
    transition(request_id, RequestStatus.FAILED, only_from=(RequestStatus.DOWNLOADING,), error_message=message)
    downloads.mark_failed(payload["downloadHistoryId"], message)

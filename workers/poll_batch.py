"""A poll batch (app/jobs/poll_batches.py): up to BATCH_SIZE due monitor_download polls in one RQ run.

1. take the due ids (one Lua pop) and read their rows (client kind and info hash in the payload);
2. read the client's shared answer once per client kind (app/integrations/torrent_snapshot.read_many);
3. claim the rows in one conditional UPDATE (delayed + polling → active, each its own fresh token and
   heartbeat, no attempt spent: state.claim_polls);
4. read their requests and download_history rows (two SELECTs) and decide each download with the pure
   `monitor_policy.plain_poll`;
5. write the plain "still downloading, poll again" outcomes in one transaction of set-based statements, each
   row fenced by its own token in the same statement: the requests' progress, the download_history states, the
   progress events, then the jobs rows back to `delayed` + `polling` (polls + 1, poll state, run_at); then add
   them to the due set again;
6. hand every other download (request moved on, row settled, torrent missing or no answer from the client,
   complete, failed, stalled) to its own ordinary run (state.release_polls, then service.enqueue_run), which
   applies workers/processors/monitor_download.py as before.

A batch killed or frozen after step 3 leaves its rows active with a heartbeat: the lease sweep
(app/jobs/recovery.py sweep_expired_leases) declares them stuck and re-runs each on its own; the batch's
later writes are refused by the tokens.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from rq import get_current_job

from app.audiobook_requests import downloads
from app.audiobook_requests.state import RequestStatus, update_progress_of_polls
from app.config import get_settings
from app.db import ensure_bound
from app.integrations import torrent_snapshot
from app.integrations.torrent import download_client
from app.jobs import metrics, poll_batches, state, types
from app.jobs.queues import get_redis
from app.jobs.service import enqueue_run
from app.jobs.types import Priority
from app.models import DownloadHistory, DownloadStatus, Job, Request, utcnow
from app.pipeline.download_state import DownloadState, counts_toward_stall
from app.pipeline.monitor_policy import PollState, plain_poll, snapshot_max_age

log = logging.getLogger(__name__)
CONTEXT = "MonitorDownload"
# The benchmark's probe (bench/monitor_scale.py): called with each poll's lag (start − due, seconds), the
# batch's duration, and the lags of the first polls (no poll state yet) apart. None in production.
observe: Callable[[list[float], float, list[float]], None] | None = None


def run_batch() -> dict[str, int]:
    ensure_bound()
    connection = get_redis()
    rq_job = get_current_job()
    poll_batches.batch_started(connection, rq_job.id if rq_job is not None else None)
    result = poll_due(connection)
    poll_batches.promote(connection)  # more due than the queued batches cover: the next one goes at once
    return result


def poll_due(connection: Any, limit: int = poll_batches.BATCH_SIZE) -> dict[str, int]:
    """One batch: the steps of the module's docstring. Returns counts (polled, handed on, fenced out)."""
    due = poll_batches.take_due(connection, limit)
    if not due:
        return {"polled": 0, "handedOn": 0, "fencedOut": 0}
    started = time.time()
    settings = get_settings()
    waiting = {str(row.id): row.payload or {} for row in Job.select(Job.id, Job.payload).where(
        Job.id.in_(list(due)) & poll_batches.waiting_poll())}
    answers = _read_clients(connection, waiting.values(), settings)
    claimed = state.claim_polls({job_id: uuid.uuid4().hex for job_id in waiting},
                                utcnow() + timedelta(seconds=poll_batches.EARLY_SECONDS))
    _put_back(connection, {job_id: due[job_id] for job_id in waiting}, {row["id"] for row in claimed})
    now = utcnow()
    requests = _statuses(Request, Request.status, [row["payload"].get("requestId") for row in claimed])
    histories = _statuses(DownloadHistory, DownloadHistory.download_status,
                          [row["payload"].get("downloadHistoryId") for row in claimed])
    plain: list[tuple[dict, Any, Any]] = []
    handed: list[dict] = []
    for row in claimed:
        payload = row["payload"]
        kind, info_hash = payload.get("downloadClient"), str(payload.get("downloadClientId") or "").lower()
        known, statuses = answers.get(kind, (False, {}))
        status = statuses.get(info_hash) if known else None
        decision = plain_poll(
            PollState.from_payload(payload), now,
            request_downloading=requests.get(str(payload.get("requestId"))) == RequestStatus.DOWNLOADING.value,
            download_open=histories.get(str(payload.get("downloadHistoryId"))) not in (None, *downloads.SETTLED),
            found=status is not None, complete=status is not None and status.state is DownloadState.COMPLETE,
            failed=status is not None and status.state is DownloadState.FAILED,
            downloaded=status.downloaded if status else 0, progress=status.progress if status else 0.0,
            allowed=status is not None and counts_toward_stall(status.state),
            stall_limit_seconds=settings.download_stall_limit_seconds, base_delay=settings.monitor_poll_seconds)
        if decision is None:
            handed.append(row)
        else:
            plain.append((row, status, decision))
    written = _write_plain(connection, plain)
    _hand_on(handed)
    if observe is not None:
        lags = {row["id"]: started - due[row["id"]] for row, _, _ in plain if row["id"] in written}
        first = {row["id"] for row, _, _ in plain if "stallCount" not in row["payload"]}
        observe([lag for i, lag in lags.items() if i not in first], time.time() - started,
                [lag for i, lag in lags.items() if i in first])
    return {"polled": len(written), "handedOn": len(handed), "fencedOut": len(plain) - len(written)}


def _put_back(connection: Any, waiting: dict[str, float], claimed: set[str]) -> None:
    """Waiting rows the claim refused are not due yet by the database's clock (a host whose clock runs behind):
    back into the due set with their due time (NX: a newer entry written meanwhile wins). Rows no longer
    waiting are someone else's now (cancelled, or a run of their own, whose reschedule adds them again)."""
    refused = {job_id: at for job_id, at in waiting.items() if job_id not in claimed}
    if refused:
        connection.zadd(poll_batches.DUE_KEY, refused, nx=True)


def _read_clients(connection: Any, payloads: Any, settings: Any) -> dict[str, tuple[bool, dict]]:
    """The shared answer of each client kind the batch's downloads use: (known, info hash → status)."""
    from workers.processors.monitor_download import monitored_hashes

    by_kind: dict[str, list[str]] = {}
    for payload in payloads:
        if payload.get("downloadClient") and payload.get("downloadClientId"):
            by_kind.setdefault(payload["downloadClient"], []).append(str(payload["downloadClientId"]))
    answers = {}
    for kind, hashes in by_kind.items():
        try:
            answers[kind] = torrent_snapshot.read_many(
                connection, kind, hashes, client=partial(download_client, kind),
                category=settings.download_client_category, monitored=partial(monitored_hashes, kind),
                max_age=snapshot_max_age(settings.monitor_poll_seconds))
        except Exception as exc:  # no answer: each download's own run asks (and counts the failure)
            log.warning("poll batch: no answer from %s (%s); its downloads are polled on their own", kind,
                        type(exc).__name__)
            answers[kind] = (False, {})
    return answers


def _statuses(model: Any, column: Any, ids: list[Any]) -> dict[str, str]:
    ids = [i for i in ids if i]
    if not ids:
        return {}
    return {str(row.id): getattr(row, column.name) for row in model.select(model.id, column).where(model.id.in_(ids))}


def _write_plain(connection: Any, plain: list[tuple[dict, Any, Any]]) -> set[str]:
    """The plain outcomes, each statement fenced row by row; then their next polls into the due set."""
    if not plain:
        return set()
    progress: list[tuple[Any, int, str, str]] = []
    client_states: list[tuple[Any, DownloadStatus, str, str]] = []
    events: list[tuple[str, str, str, str, dict | None]] = []
    waiting: list[tuple[str, str, float, dict]] = []
    due: dict[str, float] = {}
    next_at = time.time()
    for row, status, decision in plain:
        payload, job_id, token = row["payload"], row["id"], row["token"]
        percent = int(status.progress * 100)
        progress.append((payload["requestId"], percent, job_id, token))
        client_states.append((payload["downloadHistoryId"], DownloadStatus.of(status.state), job_id, token))
        if decision.log_progress:
            events.append((job_id, token, CONTEXT, f"Downloading: {percent}% ({status.raw_state})",
                           {"progress": percent, "speed": status.download_speed, "eta": status.eta,
                            "state": status.raw_state}))
        if decision.clock_held:
            events.append((job_id, token, CONTEXT, f"Torrent is {status.state.value} ({status.raw_state}): not "
                           f"allowed to download, so the stall clock is held until it is allowed again", None))
        due_at = round(next_at + decision.delay, 3)
        waiting.append((job_id, token, decision.delay, {**payload, **decision.poll.to_payload(), "pollDueAt": due_at}))
        due[job_id] = due_at
    db = ensure_bound()
    with db.atomic():
        update_progress_of_polls(progress)
        downloads.set_client_states_of_polls(client_states)
        poll_batches.insert_events(events)
        written = set(state.mark_polls_waiting(waiting))  # last: it clears the tokens the others are fenced by
    poll_batches.schedule(connection, {job_id: at for job_id, at in due.items() if job_id in written})
    if written:  # the /metrics counter of polls (app/jobs/metrics.py), one addition for the batch
        connection.hincrby(metrics.RUNS_KEY, f"{poll_batches.JOB_TYPE}|polled", len(written))
    return written


def _hand_on(handed: list[dict]) -> None:
    """Each download that is not a plain poll gets its own ordinary run now (the monitor processor)."""
    if not handed:
        return
    released = set(state.release_polls([(row["id"], row["token"]) for row in handed]))
    definition = types.get(poll_batches.JOB_TYPE)
    for row in handed:
        if row["id"] not in released or definition is None:
            continue
        try:
            _forget_rq_job(row["id"])
            enqueue_run(definition, row["payload"], Priority.parse(row["priority"]),
                        max(row["max_attempts"] - row["attempts"], 1), 0)
        except Exception as exc:  # Redis refused: the row waits, due; repair_lost adds it to the due set again
            log.warning("poll batch: job %s could not be handed to its own run (%s)", row["id"], type(exc).__name__)


def _forget_rq_job(job_id: str) -> None:
    """The download's earlier RQ job (its first run, finished) makes way for the new run with the same id."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob

    from app.jobs.service import rq_job_id

    connection = get_redis()
    try:
        RQJob.fetch(rq_job_id(job_id), connection=connection).delete(remove_from_queue=True)
    except NoSuchJobError:
        pass
    except ValueError:
        connection.delete(RQJob.key_for(rq_job_id(job_id)))

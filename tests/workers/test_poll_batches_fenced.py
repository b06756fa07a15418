"""A poll batch under faults, with a real worker pool (tests/run_frozen_batch_pool.py) and scheduler.py as
subprocesses on the test's Redis and PostgreSQL, a 5 s lease and polls every second:

- frozen (SIGSTOP) with its decisions made, right before its writes, past its lease: the lease sweep hands
  the download to its own run, which finishes it; the resumed batch, with its stale reading of the client,
  writes nothing;
- killed (SIGKILL) right after its claim: the lease sweep brings the row back, it is polled again on its own and
  then by batches, and no attempt is spent.
"""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from app.audiobook_requests.state import RequestStatus
from app.integrations import torrent as torrent_module
from app.integrations.torrent import TorrentStatus
from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.models import Audiobook, DownloadHistory, Job, JobEvent, Request, utcnow
from app.pipeline.download_state import DownloadState

from fakes.shared_client import SharedDownloadClient
from helpers import drain, start_process, start_scheduler, stop_process, wait_for

LEASE = 5
HASH = "cd" * 20
SIZE = 100


def _status(progress: float, state=DownloadState.DOWNLOADING) -> TorrentStatus:
    return TorrentStatus(HASH, "Book", state, state.value, progress, int(SIZE * progress), SIZE, 1000, 60,
                         "/downloads/Book", 0, "")


@pytest.fixture
def batch_env(settings_env, use_settings, tmp_path, redis_conn):
    use_settings(JOB_HEARTBEAT_TTL=LEASE, MONITOR_POLL_SECONDS=1, DOWNLOAD_STALL_LIMIT_SECONDS=60,
                 MEDIA_DIR=tmp_path / "media", DOWNLOAD_DIR=tmp_path / "downloads", TAG_FILES="false")
    torrent_module.set_client_factory(lambda kind: SharedDownloadClient(redis_conn))
    yield settings_env[1]
    torrent_module.set_client_factory(None)


def _first_poll(redis_conn) -> tuple[str, Request, DownloadHistory]:
    """A download at 50 % whose first poll (its own run) ran here; its next polls are the batches'."""
    SharedDownloadClient(redis_conn).put(_status(0.5))
    book = Audiobook.create(title="Warbreaker", author="Brandon Sanderson")
    request = Request.create(audiobook=book, status=RequestStatus.DOWNLOADING.value)
    history = DownloadHistory.create(request=request, torrent_hash=HASH, selected=True, download_client="qbittorrent",
                                     download_client_id=HASH, download_status="downloading", started_at=utcnow())
    job_id = add_job("monitor_download", {"requestId": str(request.id), "downloadHistoryId": str(history.id),
                                          "downloadClientId": HASH, "downloadClient": "qbittorrent"})
    drain(queue_names_for_group("monitor_download"), until=lambda: Job.get_by_id(job_id).polls >= 1, timeout=30)
    return job_id, request, history


def _start(env, tmp_path, redis_conn, freeze_at: str):
    pool = start_process(["tests/run_frozen_batch_pool.py", "monitor_download", "--size", "2"],
                         {**env, "TEST_FREEZE_AT": freeze_at}, tmp_path / "pool.log")
    scheduler = start_scheduler(env, tmp_path / "scheduler.log")
    frozen = int(wait_for(lambda: redis_conn.get("test:froze"), 60, message=f"a batch frozen at {freeze_at}"))
    return pool, scheduler, frozen


@pytest.mark.slow
def test_a_batch_frozen_past_its_lease_writes_nothing_after_the_downloads_own_run_finished_it(batch_env, redis_conn,
                                                                                              tmp_path):
    job_id, request, history = _first_poll(redis_conn)
    SharedDownloadClient(redis_conn).put(_status(0.6))  # what the batch will read: 60 %, a new progress step
    pool, scheduler, frozen = _start(batch_env, tmp_path, redis_conn, "write")
    try:
        row = Job.get_by_id(job_id)
        assert row.status == "active" and row.polling  # claimed by the frozen batch
        SharedDownloadClient(redis_conn).put(_status(1.0, DownloadState.COMPLETE))
        wait_for(lambda: Job.get_by_id(job_id).status == "completed", 60, interval=0.2,
                 message="the download's own run after the lease sweep")
        os.kill(frozen, signal.SIGCONT)
        frozen = None
        result = json.loads(wait_for(lambda: redis_conn.get("test:stale-done"), 30, message="the resumed batch"))
    finally:
        if frozen is not None:
            os.kill(frozen, signal.SIGCONT)
        stop_process(scheduler)
        stop_process(pool)
    assert result == {"polled": 0, "handedOn": 0, "fencedOut": 1}
    row = Job.get_by_id(job_id)
    assert row.status == "completed" and row.result["completed"] is True and row.polls == 1
    assert DownloadHistory.get_by_id(history.id).download_status == "completed"
    assert Request.get_by_id(request.id).progress == 100  # not the stale 60
    messages = [e.message for e in JobEvent.select().where(JobEvent.job == job_id)]
    assert not any("60%" in m for m in messages)  # the stale batch's progress event was refused too
    assert any(m.startswith("Run lost") for m in messages)


@pytest.mark.slow
def test_a_batch_killed_after_its_claim_loses_no_download_and_spends_no_attempt(batch_env, redis_conn, tmp_path):
    job_id, _, _ = _first_poll(redis_conn)
    pool, scheduler, frozen = _start(batch_env, tmp_path, redis_conn, "claim")
    try:
        os.kill(frozen, signal.SIGKILL)
        started = time.monotonic()
        SharedDownloadClient(redis_conn).put(_status(0.7))
        wait_for(lambda: Job.get_by_id(job_id).polls >= 4, 90, interval=0.2,
                 message="the download polled again after the kill")
        print(f"polled again {time.monotonic() - started:.1f} s after the kill")
    finally:
        stop_process(scheduler)
        stop_process(pool)
    row = Job.get_by_id(job_id)
    assert row.attempts == 1 and row.status in ("delayed", "active")
    assert Request.get(Request.id == row.request_id).progress == 70
    messages = [e.message for e in JobEvent.select().where(JobEvent.job == job_id)]
    assert any(m.startswith("Run lost") for m in messages)

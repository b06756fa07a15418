"""Every write a download makes is fenced by its run's token in the same statement: a real worker frozen
(SIGSTOP) at each point, its lease running out, a successor run finishing the job, then the frozen run resumed
(SIGCONT) with what it read before: nothing it writes lands.

Points: download_torrent's record of the torrent it added; the monitor's client state and progress over a
download its successor completed; a stall's removal, blocklist entry and end of the row after its successor saw
the torrent move again; the import's update of its audiobook after its successor imported it and Plex matched it.
The worker pool (tests/run_frozen_pool.py) and scheduler.py are subprocesses on the test's Redis and PostgreSQL
with a 5 s lease; the download client is a Redis-backed fake that both processes see.
"""
from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from app.audiobook_requests.state import RequestStatus
from app.integrations.torrent_interface import TorrentStatus
from app.jobs.service import add_job
from app.models import Audiobook, BlockedRelease, DownloadHistory, Job, Request, utcnow
from app.pipeline.download_state import DownloadState

from fakes.shared_client import REMOVED, SharedDownloadClient
from helpers import start_process, start_scheduler, stop_process, wait_for

LEASE = 5
HASH = "ab" * 20
SIZE = 100


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("T")


def _freeze_and_resume(env, tmp_path, redis_conn, *, group: str, freeze_at: str, successor_done, meanwhile=None,
                       after_successor=None) -> None:
    """Start the pool (2 workers) and the scheduler; the first run to reach `freeze_at` stops itself; then
    `meanwhile()` (the world changes), the lease runs out and the successor finishes (`successor_done()`),
    `after_successor()`; then the frozen run is resumed and runs to its end."""
    pool = start_process(["tests/run_frozen_pool.py", group, "--size", "2"], {**env, "TEST_FREEZE_AT": freeze_at},
                         tmp_path / "pool.log")
    scheduler = start_scheduler(env, tmp_path / "scheduler.log")
    frozen = None
    try:
        frozen = int(wait_for(lambda: redis_conn.get("test:froze"), 60, message=f"a run frozen at {freeze_at}"))
        wait_for(lambda: _stopped(frozen), 10, message="the frozen worker to stop")
        stopped_at = time.monotonic()
        if meanwhile:
            meanwhile()
        wait_for(successor_done, 90, interval=0.2, message="the successor run")
        print(f"{freeze_at}: the successor finished {time.monotonic() - stopped_at:.1f} s after the freeze")
        if after_successor:
            after_successor()
        os.kill(frozen, signal.SIGCONT)
        frozen = None
        wait_for(lambda: redis_conn.get("test:stale-done"), 30, message="the resumed run to finish")
        time.sleep(0.5)  # its completion callback (fenced as ever) comes after the processor
    finally:
        if frozen is not None:
            os.kill(frozen, signal.SIGCONT)
        stop_process(scheduler)
        stop_process(pool)


def _status(progress: float, state=DownloadState.DOWNLOADING) -> TorrentStatus:
    return TorrentStatus(HASH, "Book", state, state.value, progress, int(SIZE * progress), SIZE, 1000, 60,
                         "/downloads/Book", 0, "")


def _downloading(client_status: TorrentStatus | None, redis_conn) -> tuple[Request, DownloadHistory]:
    book = Audiobook.create(title="Elantris", author="Brandon Sanderson")
    request = Request.create(audiobook=book, status=RequestStatus.DOWNLOADING.value, progress=50)
    history = DownloadHistory.create(request=request, torrent_name="Elantris [M4B]", torrent_hash=HASH,
                                     indexer_name="MyAudioTracker", selected=True, download_client="qbittorrent",
                                     download_client_id=HASH, download_status="downloading", started_at=utcnow())
    if client_status is not None:
        SharedDownloadClient(redis_conn).put(client_status)
    return request, history


def _monitor(request: Request, history: DownloadHistory, **poll_state) -> str:
    return add_job("monitor_download", {"requestId": str(request.id), "downloadHistoryId": str(history.id),
                                        "downloadClientId": HASH, "downloadClient": "qbittorrent", **poll_state})


def _job(job_id) -> Job:
    return Job.get_by_id(job_id)


@pytest.fixture
def fenced_env(settings_env, use_settings, tmp_path):
    use_settings(JOB_HEARTBEAT_TTL=LEASE, PROWLARR_URL="http://127.0.0.1:9", PROWLARR_API_KEY="prowlarr-key-123",
                 DOWNLOAD_STALL_LIMIT_SECONDS=60, MEDIA_DIR=tmp_path / "media", DOWNLOAD_DIR=tmp_path / "downloads",
                 TAG_FILES="false")
    return settings_env[1]


@pytest.mark.slow
def test_a_download_record_of_a_run_frozen_after_the_add_never_lands(fenced_env, redis_conn, tmp_path):
    book = Audiobook.create(title="Elantris", author="Brandon Sanderson")
    request = Request.create(audiobook=book, status=RequestStatus.SEARCHING.value)
    magnet = f"magnet:?xt=urn:btih:{HASH}&dn=Elantris"
    job_id = add_job("download_torrent", {
        "requestId": str(request.id), "audiobook": {"title": book.title, "author": book.author},
        "torrent": {"title": "Elantris [M4B]", "size": SIZE, "seeders": 5, "indexer": "MyAudioTracker",
                    "magnetUrl": magnet}})
    _freeze_and_resume(fenced_env, tmp_path, redis_conn, group="download_torrent", freeze_at="add",
                       successor_done=lambda: _job(job_id).status == "completed")
    rows = list(DownloadHistory.select().where(DownloadHistory.request == request.id))
    assert len(rows) == 1 and rows[0].download_client_id == HASH  # the successor's record only
    monitors = list(Job.select().where((Job.type == "monitor_download") & (Job.request == request.id)))
    assert [str(m.payload["downloadHistoryId"]) for m in monitors] == [str(rows[0].id)]
    assert _job(job_id).attempts == 2 and _job(job_id).result["success"] is True


@pytest.mark.slow
def test_a_poll_frozen_past_its_lease_never_turns_a_completed_download_back(fenced_env, redis_conn, tmp_path):
    request, history = _downloading(_status(0.5), redis_conn)
    job_id = _monitor(request, history)
    _freeze_and_resume(fenced_env, tmp_path, redis_conn, group="monitor_download", freeze_at="get,snapshot",
                       meanwhile=lambda: SharedDownloadClient(redis_conn).put(_status(1.0, DownloadState.COMPLETE)),
                       successor_done=lambda: _job(job_id).status == "completed")
    row = DownloadHistory.get_by_id(history.id)
    assert row.download_status == "completed" and row.download_path == "/downloads/Book"  # not `downloading`
    assert Request.get_by_id(request.id).progress == 100  # not the stale 50
    assert _job(job_id).result["completed"] is True


@pytest.mark.slow
def test_a_stall_seen_by_a_frozen_poll_removes_and_blocklists_nothing(fenced_env, redis_conn, tmp_path):
    request, history = _downloading(_status(0.5), redis_conn)
    long_still = (utcnow() - timedelta(hours=1)).isoformat()  # motionless far past the 60 s limit
    job_id = _monitor(request, history, stallCount=3, lastBytes=int(SIZE * 0.5), lastLoggedPercent=50,
                      motionlessSince=long_still)
    _freeze_and_resume(fenced_env, tmp_path, redis_conn, group="monitor_download", freeze_at="get,snapshot",
                       meanwhile=lambda: SharedDownloadClient(redis_conn).put(_status(0.6)),  # it moves again
                       successor_done=lambda: _job(job_id).status == "delayed" and _job(job_id).polls >= 1)
    assert redis_conn.lrange(REMOVED, 0, -1) == []                       # the torrent stays in the client
    assert BlockedRelease.select().where(BlockedRelease.request == request.id).count() == 0
    assert DownloadHistory.get_by_id(history.id).download_status == "downloading"
    assert Request.get_by_id(request.id).status == RequestStatus.DOWNLOADING.value


@pytest.mark.slow
def test_an_import_frozen_past_its_lease_never_rewrites_its_audiobook(fenced_env, redis_conn, tmp_path):
    request, _ = _downloading(None, redis_conn)
    folder = tmp_path / "downloads" / "Brandon Sanderson - Elantris"
    folder.mkdir(parents=True)
    (folder / "Elantris.m4b").write_bytes(os.urandom(4096))
    (tmp_path / "media").mkdir()
    job_id = add_job("organize_files", {"requestId": str(request.id), "audiobookId": str(request.audiobook_id),
                                        "downloadPath": str(folder)})
    matched = {}

    def plex_matches_it():  # what the Plex matcher writes once the book shows up (workers/processors/scan_plex.py)
        Audiobook.update(plex_guid="plex://album/elantris", status="available").where(
            Audiobook.id == request.audiobook_id).execute()
        matched.update(Audiobook.get_by_id(request.audiobook_id).__data__)

    _freeze_and_resume(fenced_env, tmp_path, redis_conn, group="organize_files", freeze_at="organize",
                       successor_done=lambda: _job(job_id).status == "completed", after_successor=plex_matches_it)
    book = Audiobook.get_by_id(request.audiobook_id)
    assert book.status == "available"                                   # not turned back to `completed`
    assert (book.file_path, book.completed_at) == (matched["file_path"], matched["completed_at"])
    assert Request.get_by_id(request.id).status == RequestStatus.DOWNLOADED.value

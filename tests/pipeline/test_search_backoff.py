"""Re-search without waiting a day.

A stalled or errored download blocklists its release and searches again at once (the next best release is
grabbed); a request waiting for a release is searched again on a back-off per request (15 min, 30 min,
1 h … at most 24 h), and each search's outcome is an event on its timeline. The back-off by table; the
pipeline through HTTP, the fake Prowlarr and real workers (in-process); a stall with the REAL
qbittorrent-nox and transmission-daemon, a client-reported error with the in-memory client.
"""
from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from app.db import database
from app.integrations.torrentfile import magnet_uri, make_torrent, read_torrent
from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.migrations import _v10_fruitless_searches_and_frequent_retry
from app.models import Audiobook, BlockedRelease, DownloadHistory, Job, JobEvent, Request, ScheduledJob, utcnow
from app.pipeline.download_state import DownloadState
from app.pipeline.search_backoff import describe_delay, search_delay
from app.schedules.defaults import ensure_default_schedules

from builders import BEARER
from fakes.prowlarr import FakeRelease
from helpers import drain

MiB = 1024 * 1024
AUTHOR = "Brandon Sanderson"


# --- the back-off (pure) --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fruitless,delay", [
    (1, timedelta(minutes=15)), (2, timedelta(minutes=30)), (3, timedelta(hours=1)), (4, timedelta(hours=2)),
    (5, timedelta(hours=4)), (6, timedelta(hours=8)), (7, timedelta(hours=16)),
    (8, timedelta(hours=24)),                       # 32 h would be next: capped at a day
    (9, timedelta(hours=24)), (40, timedelta(hours=24)), (10**9, timedelta(hours=24)),
])
def test_the_back_off_doubles_from_15_minutes_up_to_a_day(fruitless, delay):
    assert search_delay(fruitless) == delay


@pytest.mark.parametrize("fruitless", [0, -1])
def test_a_back_off_needs_a_fruitless_search(fruitless):
    with pytest.raises(ValueError, match="1 or more"):
        search_delay(fruitless)


@pytest.mark.parametrize("delay,text", [
    (timedelta(minutes=15), "15 min"), (timedelta(hours=1), "1 h"), (timedelta(minutes=90), "1 h 30 min"),
    (timedelta(hours=24), "24 h"),
])
def test_the_timeline_says_the_wait_in_minutes_and_hours(delay, text):
    assert describe_delay(delay) == text


# --- through the pipeline: the fake Prowlarr, real workers in-process ----------------------------------------

@pytest.fixture
def configured(prowlarr, use_settings, redis_conn):
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    return prowlarr


def _book_torrent(tmp_path: Path, name: str) -> bytes:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "book.m4b").write_bytes(os.urandom(40_000))
    return make_torrent(folder)


def _create(client, title: str) -> str:
    response = client.post("/api/requests", json={"title": title, "author": AUTHOR}, headers=BEARER)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["request"]["id"]


def _search_events(request_id: str) -> list[JobEvent]:
    return list(JobEvent.select().join(Job).where((Job.request == request_id) & (Job.type == "search_indexers"))
                .order_by(JobEvent.created_at))


def _retry_missing_at(monkeypatch, now: datetime) -> dict:
    """A Retry Missing Torrents run with the clock at `now`, then the searches it queued."""
    monkeypatch.setattr("workers.processors.retry_missing_torrents.utcnow", lambda: now)
    monkeypatch.setattr("workers.processors.search_indexers.utcnow", lambda: now)
    job_id = add_job("retry_missing_torrents", {})
    drain(queue_names_for_group("maintenance"))
    drain(queue_names_for_group("search_indexers"))
    return Job.get_by_id(job_id).result


@pytest.mark.slow  # four searches and a download through in-process workers: over a second
def test_a_release_that_appears_after_fruitless_searches_is_grabbed_at_the_next_due_search(
        client, configured, fake_client, monkeypatch, tmp_path):
    title = "The Way of Kings"
    request_id = _create(client, title)
    drain(queue_names_for_group("search_indexers"))                   # Prowlarr has nothing yet
    first = Request.get_by_id(request_id)
    assert first.status == "awaiting_search" and first.fruitless_searches == 1
    assert first.next_search_at == first.last_search_at + timedelta(minutes=15)
    nothing = _search_events(request_id)[-1]
    assert nothing.level == "warn" and "Nothing usable in 0 results" in nothing.message
    assert f"next search at {first.next_search_at:%Y-%m-%d %H:%M} UTC (in 15 min)" in nothing.message
    assert nothing.metadata == {"fruitlessSearches": 1, "nextSearchAt": first.next_search_at.isoformat() + "Z"}

    # not due yet: nothing is queued; due: searched again, still nothing, so the next wait doubles
    assert _retry_missing_at(monkeypatch, first.next_search_at - timedelta(seconds=1)) == {
        "success": True, "queued": 0, "waiting": 1}
    searched_at = first.next_search_at + timedelta(seconds=1)
    assert _retry_missing_at(monkeypatch, searched_at) == {"success": True, "queued": 1, "waiting": 0}
    second = Request.get_by_id(request_id)
    assert second.status == "awaiting_search" and second.fruitless_searches == 2
    assert second.next_search_at == searched_at + timedelta(minutes=30)
    assert "(in 30 min)" in _search_events(request_id)[-1].message

    # the release appears in the evening: it is grabbed at the next due search, 30 min later, not a day later
    release = f"{AUTHOR} - {title} (Unabridged) [M4B]"
    torrent = _book_torrent(tmp_path, "kings")
    configured.releases = [FakeRelease(release, 700 * MiB, seeders=12, torrent=torrent)]
    assert _retry_missing_at(monkeypatch, second.next_search_at - timedelta(minutes=1))["queued"] == 0
    assert _retry_missing_at(monkeypatch, second.next_search_at)["queued"] == 1
    grabbed = [e.message for e in _search_events(request_id) if e.message.startswith("Found and grabbed")]
    assert len(grabbed) == 1 and repr(release) in grabbed[0] and "MyAudioTracker" in grabbed[0]
    found = Request.get_by_id(request_id)
    assert found.fruitless_searches == 0 and found.next_search_at is None   # the back-off starts afresh
    drain(queue_names_for_group("download_torrent"))
    history = DownloadHistory.get(DownloadHistory.request == request_id)
    assert Request.get_by_id(request_id).status == "downloading"
    assert history.torrent_name == release and history.download_client_id == read_torrent(torrent).info_hash
    assert len(configured.searches) == 3


def test_only_due_requests_without_an_unfinished_search_are_queued(settings, redis_conn):
    book = Audiobook.create(title="t", author="a")
    now = utcnow()
    due = Request.create(audiobook=book, status="awaiting_search", next_search_at=now - timedelta(minutes=1))
    never = Request.create(audiobook=book, status="awaiting_search")              # from before the back-off
    Request.create(audiobook=book, status="awaiting_search", next_search_at=now + timedelta(hours=3))
    queued = Request.create(audiobook=book, status="awaiting_search", next_search_at=now - timedelta(hours=1))
    Job.create(type="search_indexers", status="pending", request=queued, rq_job_id="job-already-queued")
    Request.create(audiobook=book, status="failed", next_search_at=now - timedelta(hours=1))
    job_id = add_job("retry_missing_torrents", {})
    drain(queue_names_for_group("maintenance"))
    assert Job.get_by_id(job_id).result == {"success": True, "queued": 2, "waiting": 1}
    searched = [j.request_id for j in Job.select().where((Job.type == "search_indexers")
                                                         & (Job.rq_job_id != "job-already-queued"))]
    assert sorted(map(str, searched)) == sorted([str(due.id), str(never.id)])
    event = JobEvent.get(JobEvent.job == job_id)
    assert event.message == "Queued 2 searches; 1 requests wait for their next search"


def test_an_admin_retry_and_a_release_picked_by_hand_reset_the_back_off(client, configured, redis_conn, bearer):
    title = "Elantris"
    configured.releases = [FakeRelease(f"{AUTHOR} - {title} [M4B]", 500 * MiB, seeders=4)]
    later = utcnow() + timedelta(hours=16)
    waiting = Request.create(audiobook=Audiobook.create(title=title, author=AUTHOR), status="awaiting_search",
                             fruitless_searches=7, next_search_at=later)
    assert client.post(f"/api/requests/{waiting.id}/retry", headers=bearer).status_code == 200
    retried = Request.get_by_id(waiting.id)
    assert (retried.status, retried.fruitless_searches, retried.next_search_at) == ("pending", 0, None)

    Request.update(status="awaiting_search", fruitless_searches=7, next_search_at=later).where(
        Request.id == waiting.id).execute()
    releases = client.get(f"/api/requests/{waiting.id}/releases", headers=bearer).get_json()["releases"]
    picked = client.post(f"/api/requests/{waiting.id}/releases", json={"guid": releases[0]["guid"]}, headers=bearer)
    assert picked.status_code == 202, picked.get_json()
    picked_row = Request.get_by_id(waiting.id)
    assert (picked_row.status, picked_row.fruitless_searches, picked_row.next_search_at) == ("searching", 0, None)


def test_an_admin_retry_of_a_failed_search_job_resets_the_back_off(client, redis_conn, bearer):
    request = Request.create(audiobook=Audiobook.create(title="Skyward", author=AUTHOR), status="failed",
                             error_message="Prowlarr is down", fruitless_searches=6,
                             next_search_at=utcnow() + timedelta(hours=8))
    failed = Job.create(type="search_indexers", status="failed", request=request, error_message="boom", payload={
        "requestId": str(request.id), "audiobook": {"id": str(request.audiobook_id), "title": "Skyward",
                                                    "author": AUTHOR, "asin": None}})
    assert client.post(f"/api/admin/job-retry/{failed.id}", headers=bearer).status_code == 200
    row = Request.get_by_id(request.id)
    assert (row.status, row.fruitless_searches, row.next_search_at) == ("searching", 0, None)


@pytest.mark.slow  # the first poll comes 3 s after the add
def test_a_client_reported_error_blocklists_the_release_and_grabs_the_next_best_at_once(
        client, configured, fake_client, tmp_path):
    title = "Warbreaker"
    broken = f"{AUTHOR} - {title} (Unabridged) [M4B]"
    next_best = f"{AUTHOR} - {title} [MP3]"
    broken_torrent, next_torrent = _book_torrent(tmp_path, "broken"), _book_torrent(tmp_path, "next")
    configured.releases = [FakeRelease(broken, 700 * MiB, seeders=40, torrent=broken_torrent),
                           FakeRelease(next_best, 400 * MiB, seeders=3, torrent=next_torrent)]
    request_id = _create(client, title)
    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))
    broken_hash = read_torrent(broken_torrent).info_hash
    assert DownloadHistory.get(DownloadHistory.request == request_id).download_client_id == broken_hash
    fake_client.set(broken_hash, state=DownloadState.FAILED, raw_state="error", error="No space left on device")

    monitor = Job.get((Job.type == "monitor_download") & (Job.request == request_id))
    drain(queue_names_for_group("monitor_download"), until=lambda: Job.get_by_id(monitor.id).status == "completed")
    assert Job.get_by_id(monitor.id).result["failed"] is True
    request = Request.get_by_id(request_id)
    assert request.status == "awaiting_search"                          # not failed: it searches again
    assert "No space left on device" in request.error_message
    blocked = BlockedRelease.get(BlockedRelease.request == request_id)
    assert (blocked.title, blocked.info_hash, blocked.indexer) == (broken, broken_hash, "MyAudioTracker")
    search_job = Job.get_by_id(Job.get_by_id(monitor.id).result["searchJobId"])
    assert search_job.type == "search_indexers" and search_job.status == "pending"
    told = [e.message for e in JobEvent.select().where(JobEvent.job == monitor.id)]
    assert any(f"searched again now (search job {search_job.id})" in m for m in told)

    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))
    assert Request.get_by_id(request_id).status == "downloading"
    newest = (DownloadHistory.select().where(DownloadHistory.request == request_id)
              .order_by(DownloadHistory.created_at.desc()).first())
    assert newest.torrent_name == next_best and newest.download_client_id == read_torrent(next_torrent).info_hash


# --- existing installations: the schedule moves from daily to every 5 minutes ---------------------------------

@pytest.mark.parametrize("stored,after", [
    ("0 0 * * *", "*/5 * * * *"),       # the old default, unchanged: moved
    ("0 3 * * *", "0 3 * * *"),         # an admin's own cron: kept
    ("*/5 * * * *", "*/5 * * * *"),
])
def test_migration_10_moves_an_unchanged_daily_retry_schedule_to_every_5_minutes(settings, stored, after):
    ensure_default_schedules(settings)
    row = ScheduledJob.get(ScheduledJob.type == "retry_missing_torrents")
    assert row.schedule == "*/5 * * * *"                               # a new installation starts there
    ScheduledJob.update(schedule=stored, next_run=datetime(2030, 1, 1)).where(ScheduledJob.id == row.id).execute()
    _v10_fruitless_searches_and_frequent_retry(database.obj)
    moved = ScheduledJob.get_by_id(row.id)
    assert moved.schedule == after
    assert (moved.next_run is None) is (stored != after)                # the timer starts it from the next tick


# --- a stall with the real daemons: the next best release is grabbed at once -------------------------------------

def test_a_stalled_download_leads_to_the_next_best_release_being_grabbed_at_once(
        daemon, prowlarr, use_settings, client, redis_conn):
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key, DOWNLOAD_CLIENT=daemon.kind,
                 DOWNLOAD_CLIENT_URL=daemon.url, DOWNLOAD_CLIENT_USERNAME=daemon.username,
                 DOWNLOAD_CLIENT_PASSWORD=daemon.password, DOWNLOAD_DIR=str(daemon.download_dir),
                 MONITOR_POLL_SECONDS=0.5, DOWNLOAD_STALL_LIMIT_SECONDS=2)
    title = f"Mistborn {uuid.uuid4().hex[:6]}"
    dead_hash = uuid.uuid4().hex + uuid.uuid4().hex[:8]                # a magnet no peer will ever have
    folder = daemon.download_dir / f"{AUTHOR} - {title} [MP3]"
    folder.mkdir()
    (folder / f"{title}.mp3").write_bytes(os.urandom(300_000))
    good = make_torrent(folder)                                         # its data is already on disk
    prowlarr.releases = [
        FakeRelease(f"{AUTHOR} - {title} (Unabridged) [M4B]", 700 * MiB, seeders=60,
                    magnet=magnet_uri(dead_hash, f"{AUTHOR} - {title}")),
        FakeRelease(f"{AUTHOR} - {title} [MP3]", 400 * MiB, seeders=2, torrent=good),
    ]
    request_id = _create(client, title)
    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))
    first = Job.get((Job.type == "monitor_download") & (Job.request == request_id))
    assert first.payload["downloadClientId"] == dead_hash               # the best release goes first

    drain(queue_names_for_group("monitor_download"), until=lambda: Job.get_by_id(first.id).status == "completed",
          timeout=60)
    assert Job.get_by_id(first.id).result["stalled"] is True
    assert BlockedRelease.get(BlockedRelease.request == request_id).info_hash == dead_hash
    searches = Job.select().where((Job.type == "search_indexers") & (Job.request == request_id))
    assert searches.count() == 2 and Request.get_by_id(request_id).status == "awaiting_search"

    # the search queued by the stall runs now: the stalled release is blocklisted, the next best is grabbed
    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))
    second = (Job.select().where((Job.type == "monitor_download") & (Job.request == request_id) & (Job.id != first.id))
              .get())
    assert second.payload["downloadClientId"] == read_torrent(good).info_hash
    drain(queue_names_for_group("monitor_download"), until=lambda: Job.get_by_id(second.id).status == "completed",
          timeout=60)
    assert Job.get_by_id(second.id).result["completed"] is True
    assert Request.get_by_id(request_id).status == "downloading" and Request.get_by_id(request_id).progress == 100
    assert len(prowlarr.searches) == 2

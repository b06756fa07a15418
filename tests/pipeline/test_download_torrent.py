"""download_torrent: which failures end the job, the error when no release is usable, and the processor
in-process against the fake Prowlarr and the real qbittorrent-nox: a malformed or looping best release is skipped
for the next alternate, the request fails at once (naming the releases) when every one failed for good, a release
that may work later keeps the job retryable, and a retried job runs its stored payload."""
from __future__ import annotations

import json
import os
import uuid
from datetime import UTC
from pathlib import Path

import pytest
from rq.registry import ScheduledJobRegistry

from app.admin_actions.retries import retry_job
from app.integrations.errors import PermanentServiceError, TransientServiceError
from app.integrations.torrent import download_client
from app.integrations.torrentfile import (
    TorrentFileError,
    magnet_uri,
    make_torrent,
    read_torrent,
)
from app.jobs import poll_batches
from app.jobs.queues import get_queue, get_redis, queue_name, queue_names_for_group
from app.jobs.service import rq_job_id
from app.jobs.types import Priority
from app.models import DownloadHistory, Job, Request
from workers.processors.download_torrent import MONITOR_FIRST_DELAY, ReleaseFailure, ends_the_job, no_release_usable

from builders import BEARER, event_messages
from fakes.prowlarr import FakeRelease
from helpers import drain

MiB = 1024 * 1024


# --- the decisions of download_torrent ------------------------------------------------------------------

@pytest.mark.parametrize("error, ends", [
    (PermanentServiceError("Prowlarr", "release download was refused with HTTP 401", 401), True),
    (TransientServiceError("Prowlarr", "cannot connect"), True),
    (TransientServiceError("Prowlarr", "release download failed with HTTP 429", 429), False),
    (TransientServiceError("Prowlarr", "release download failed with HTTP 500", 500), False),
    (PermanentServiceError("Prowlarr", "release download failed with HTTP 404", 404), False),
    (PermanentServiceError("Prowlarr", "release download was refused with HTTP 403", 403), False),
    (PermanentServiceError("Prowlarr", "release link redirected more than 5 times"), False),
    (PermanentServiceError("indexer tracker", "release download was refused with HTTP 401", 401), False),
    (TransientServiceError("indexer tracker", "cannot connect"), False),
    (TorrentFileError("not a valid torrent file: truncated data"), False),
])
def test_which_failures_end_the_job(error, ends):
    assert ends_the_job(error) is ends


@pytest.mark.parametrize("transient_flags, expected", [
    ((False,), PermanentServiceError),
    ((False, False, False), PermanentServiceError),
    ((True,), TransientServiceError),
    ((False, True), TransientServiceError),
])
def test_the_error_when_no_release_is_usable(transient_flags, expected):
    failures = [ReleaseFailure(f"Release {i}", "some reason", flag) for i, flag in enumerate(transient_flags)]
    error = no_release_usable(failures)
    assert type(error) is expected
    assert all(f"'Release {i}' (some reason)" in str(error) for i in range(len(failures)))


# --- the first poll ---------------------------------------------------------------------------------------

def test_the_first_poll_of_a_new_download_waits_three_seconds(prowlarr, use_settings, fake_client, client):
    """The client needs a moment to register a torrent it was just given: download_torrent queues the first
    monitor_download MONITOR_FIRST_DELAY (3 s) later, as a delayed job, never at once. On PostgreSQL it waits as
    a poll (in the poll batches' due set, no RQ job: app/jobs/poll_batches.py); on SQLite as a delayed RQ job."""
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    info_hash = "0123456789abcdef0123456789abcdef01234567"
    prowlarr.releases = [_release("Oathbringer", "[M4B]", 10, magnet=magnet_uri(info_hash, "Oathbringer"))]
    download = _search_and_download(_request(client, "Oathbringer"))
    assert download.status == "completed", download.error_message
    monitor = Job.get_by_id(download.result["monitorJobId"])
    assert (monitor.type, monitor.status, monitor.payload["downloadClientId"]) == \
           ("monitor_download", "delayed", info_hash)
    assert MONITOR_FIRST_DELAY == 3
    assert abs((monitor.run_at - monitor.created_at).total_seconds() - MONITOR_FIRST_DELAY) < 0.5
    scheduled = ScheduledJobRegistry(queue=get_queue(queue_name("monitor_download", Priority(monitor.priority))))
    if poll_batches.enabled():
        assert monitor.polling and scheduled.get_job_ids() == []
        due = get_redis().zscore(poll_batches.DUE_KEY, str(monitor.id))
        assert due is not None and abs(due - monitor.payload["pollDueAt"]) < 0.01
        assert abs(monitor.payload["pollDueAt"] - monitor.created_at.replace(tzinfo=UTC).timestamp()
                   - MONITOR_FIRST_DELAY) < 0.5
    else:
        assert scheduled.get_job_ids() == [rq_job_id(monitor.id)]


# --- download_torrent in-process, real qbittorrent-nox ----------------------------------------------------

@pytest.fixture
def configure(qbittorrent, prowlarr, use_settings, redis_conn):
    def apply(**extra):
        return use_settings(**{
            "PROWLARR_URL": prowlarr.url, "PROWLARR_API_KEY": prowlarr.api_key, "DOWNLOAD_CLIENT": "qbittorrent",
            "DOWNLOAD_CLIENT_URL": qbittorrent.url, "DOWNLOAD_CLIENT_USERNAME": qbittorrent.username,
            "DOWNLOAD_CLIENT_PASSWORD": qbittorrent.password, "DOWNLOAD_DIR": str(qbittorrent.download_dir),
            "JOB_BACKOFF_SECONDS": 1, **extra})
    return apply


@pytest.fixture
def pipeline(configure):
    return configure()


def _book(daemon, title: str) -> bytes:
    folder = daemon.download_dir / f"Brandon Sanderson - {title} [M4B]"
    folder.mkdir()
    (folder / f"{title}.m4b").write_bytes(os.urandom(100_000))
    return make_torrent(Path(folder))


def _request(client, title: str) -> str:
    response = client.post("/api/requests", json={"title": title, "author": "Brandon Sanderson"}, headers=BEARER)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["request"]["id"]


def _search_and_download(request_id: str) -> Job:
    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))
    return Job.get((Job.type == "download_torrent") & (Job.request == request_id))


def _release(title: str, variant: str, seeders: int, **kwargs) -> FakeRelease:
    return FakeRelease(f"Brandon Sanderson - {title} {variant}", 700 * MiB, seeders=seeders, **kwargs)


def test_a_malformed_best_release_is_skipped_for_the_alternate(pipeline, qbittorrent, prowlarr, client):
    title = f"Oathbringer {uuid.uuid4().hex[:6]}"
    torrent = _book(qbittorrent, title)
    prowlarr.releases = [_release(title, "(Unabridged) [M4B]", 90, torrent=b"d4:infod4:namei5eee"),
                         _release(title, "[M4B]", 5, torrent=torrent)]
    request_id = _request(client, title)
    job = _search_and_download(request_id)
    assert job.status == "completed" and job.attempts == 1
    history = DownloadHistory.get(DownloadHistory.request == request_id)
    assert history.torrent_name == f"Brandon Sanderson - {title} [M4B]"
    assert download_client().get(read_torrent(torrent).info_hash) is not None
    assert Job.select().where((Job.type == "monitor_download") & (Job.request == request_id)).count() == 1
    assert Request.get_by_id(request_id).status == "downloading"
    assert any("1/2" in m and "not a valid torrent file" in m for m in event_messages(job))


def test_when_every_release_is_malformed_the_request_fails_after_one_attempt(pipeline, qbittorrent, prowlarr,
                                                                                client):
    title = f"Rhythm of War {uuid.uuid4().hex[:6]}"
    truncated = _book(qbittorrent, title)[:-7]
    prowlarr.releases = [_release(title, "(Unabridged) [M4B]", 90, torrent=b"d4:infod4:namei5eee"),
                         _release(title, "[M4B]", 5, torrent=truncated)]
    request_id = _request(client, title)
    job = _search_and_download(request_id)
    assert job.status == "failed" and job.attempts == 1 and len(prowlarr.downloads) == 2
    request = Request.get_by_id(request_id)
    assert request.status == "failed"
    for release in prowlarr.releases:
        assert repr(release.title) in request.error_message
    assert "not a valid torrent file" in request.error_message
    assert DownloadHistory.select().where(DownloadHistory.request == request_id).count() == 0


def test_a_release_that_may_work_later_keeps_the_job_retryable(configure, qbittorrent, prowlarr, client):
    configure(JOB_MAX_ATTEMPTS=2)
    title = f"Dawnshard {uuid.uuid4().hex[:6]}"
    prowlarr.releases = [_release(title, "(Unabridged) [M4B]", 90, torrent=b"d4:infod4:namei5eee"),
                         _release(title, "[M4B]", 5, error=503)]
    request_id = _request(client, title)
    job = _search_and_download(request_id)
    assert job.status == "failed" and job.attempts == 2 and len(prowlarr.downloads) == 4
    assert "temporarily unavailable" in Request.get_by_id(request_id).error_message


def test_a_redirect_loop_on_the_best_release_falls_back_to_the_alternate(pipeline, qbittorrent, prowlarr, client,
                                                                          indexer):
    title = f"Tress {uuid.uuid4().hex[:6]}"
    torrent = _book(qbittorrent, title)
    prowlarr.releases = [_release(title, "(Unabridged) [M4B]", 90, redirect=f"{indexer.url}/loop"),
                         _release(title, "[M4B]", 5, torrent=torrent)]
    request_id = _request(client, title)
    job = _search_and_download(request_id)
    assert job.status == "completed"
    assert DownloadHistory.get(DownloadHistory.request == request_id).torrent_name.endswith(f"{title} [M4B]")
    assert any("redirected more than 5 times" in m for m in event_messages(job))


def test_a_retried_download_job_runs_its_stored_payload(configure, qbittorrent, prowlarr, client):
    """retry_job re-enqueues the stored payload (whole; redacted only when shown): its links work as stored."""
    configure(JOB_MAX_ATTEMPTS=1)
    title = f"Sixth of the Dusk {uuid.uuid4().hex[:6]}"
    torrent = _book(qbittorrent, title)
    prowlarr.releases = [_release(title, "[M4B]", 9, torrent=torrent, error=500)]
    request_id = _request(client, title)
    failed = _search_and_download(request_id)
    assert failed.status == "failed" and Request.get_by_id(request_id).status == "failed"
    stored = json.dumps(failed.payload)
    assert "apikey" not in stored.lower() and "REDACTED" not in stored

    prowlarr.releases[0].error = None  # the indexer is back
    retried = Job.get_by_id(retry_job(failed.id))
    drain(queue_names_for_group("download_torrent"))
    retried = Job.get_by_id(retried.id)
    assert retried.status == "completed", retried.error_message
    assert download_client().get(read_torrent(torrent).info_hash) is not None
    assert prowlarr.unauthorized_count == 0 and prowlarr.downloads == ["0", "0"]

"""Swap and re-open. An admin may pick a release while a request downloads (the unfinished
torrent goes with its partial files and is blocklisted, its monitor stops, the new one starts); a cancelled
request can be retried (it searches again) or given a release; an import that ends in `warn` blocklists its
release.

Through HTTP (the requests API, Flask test client) against real PostgreSQL and Redis and the fake Prowlarr; the
swap against the REAL qbittorrent-nox and transmission-daemon (`daemon`), the rest with the in-memory client.
"""
from __future__ import annotations

import os

import pytest

from app.audiobook_requests.blocklist import blocklist_for
from app.integrations.torrent import download_client
from app.integrations.torrentfile import make_torrent, read_torrent
from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.models import Audiobook, BlockedRelease, DownloadHistory, Job, JobEvent, Request
from app.pipeline.ranking import Release

from builders import BEARER
from fakes.prowlarr import FakeRelease
from helpers import book_in_client, drain, wait_for

MiB = 1024 * 1024
TITLE, AUTHOR = "Elantris", "Brandon Sanderson"
SLOW = f"{AUTHOR} - {TITLE} [MP3]"
BETTER = f"{AUTHOR} - {TITLE} (Unabridged) [M4B]"


def _releases(client, request) -> list[dict]:
    response = client.get(f"/api/requests/{request.id}/releases", headers=BEARER)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["releases"]


def _pick(client, request, title: str):
    guid = next(r["guid"] for r in _releases(client, request) if r["title"] == title)
    return client.post(f"/api/requests/{request.id}/releases", json={"guid": guid}, headers=BEARER)


def _downloading(info_hash: str, kind: str = "qbittorrent") -> tuple[Request, DownloadHistory, str]:
    """A request downloading SLOW (its row and its monitor, due in a minute)."""
    request = Request.create(audiobook=Audiobook.create(title=TITLE, author=AUTHOR), status="downloading",
                             progress=50)
    row = DownloadHistory.create(request=request, indexer_name="MyAudioTracker", torrent_name=SLOW,
                                 torrent_hash=info_hash, download_client=kind, download_client_id=info_hash,
                                 download_status="downloading", selected=True)
    monitor = add_job("monitor_download", {"requestId": str(request.id), "downloadHistoryId": str(row.id),
                                           "downloadClientId": info_hash, "downloadClient": kind}, delay=60)
    return request, row, monitor


def test_the_release_being_downloaded_cannot_be_picked_again(client, prowlarr, fake_client, use_settings):
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    prowlarr.releases = [FakeRelease(SLOW, 300 * MiB, seeders=1), FakeRelease(BETTER, 600 * MiB, seeders=30)]
    fake_client.put("ab" * 20, progress=0.5)
    request, _, monitor = _downloading("ab" * 20)
    refused = _pick(client, request, SLOW)
    assert refused.status_code == 409
    assert "is the release this request is downloading now" in refused.get_json()["error"]
    assert Request.get_by_id(request.id).status == "downloading" and Job.get_by_id(monitor).status == "delayed"
    assert "ab" * 20 in fake_client.torrents and BlockedRelease.select().count() == 0


def test_a_cancelled_request_can_be_retried_and_searches_again(client, prowlarr, fake_client, use_settings, bearer):
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    prowlarr.releases = []
    request_id = client.post("/api/requests", json={"title": TITLE, "author": AUTHOR},
                             headers=bearer).get_json()["request"]["id"]
    assert client.post(f"/api/requests/{request_id}/cancel", headers=bearer).status_code == 200

    retried = client.post(f"/api/requests/{request_id}/retry", headers=bearer)
    assert retried.status_code == 200, retried.get_json()
    row = Request.get_by_id(request_id)
    assert row.status == "pending" and row.error_message is None
    search = Job.get_by_id(retried.get_json()["jobId"])
    assert search.type == "search_indexers" and search.status == "pending"
    drain(queue_names_for_group("search_indexers"))
    assert len(prowlarr.searches) == 1 and Request.get_by_id(request_id).status == "awaiting_search"
    # and it can be cancelled again
    assert client.post(f"/api/requests/{request_id}/cancel", headers=bearer).status_code == 200


def test_a_cancelled_request_is_not_reopened_while_its_book_has_another_active_request(client, prowlarr,
                                                                                     use_settings, redis_conn, bearer):
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    prowlarr.releases = [FakeRelease(BETTER, 600 * MiB, seeders=30)]
    book = Audiobook.create(title=TITLE, author=AUTHOR)
    cancelled = Request.create(audiobook=book, status="cancelled")
    newer = Request.create(audiobook=book, status="downloading")
    for response in (client.post(f"/api/requests/{cancelled.id}/retry", headers=bearer),
                     _pick(client, cancelled, BETTER)):
        assert response.status_code == 409
        assert f"the book already has another request ({newer.id}) in status downloading" in \
            response.get_json()["error"]
    assert Request.get_by_id(cancelled.id).status == "cancelled" and Job.select().count() == 0


def test_a_cancelled_request_can_take_a_picked_release(client, prowlarr, use_settings, redis_conn):
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    prowlarr.releases = [FakeRelease(BETTER, 600 * MiB, seeders=30)]
    request = Request.create(audiobook=Audiobook.create(title=TITLE, author=AUTHOR), status="cancelled",
                             error_message="Cancelled by an admin")
    response = _pick(client, request, BETTER)
    assert response.status_code == 202, response.get_json()
    row = Request.get_by_id(request.id)
    assert row.status == "searching" and row.error_message is None
    job = Job.get_by_id(response.get_json()["jobId"])
    assert job.type == "download_torrent" and job.payload["torrent"]["title"] == BETTER
    assert [e.message for e in JobEvent.select().where(JobEvent.job == job.id)] == [
        f"Release picked by an admin: {BETTER!r} from MyAudioTracker; the cancelled request is re-opened"]


def test_a_stale_job_never_reopens_a_cancelled_request(settings):
    """Only the admin's retry and pick leave `cancelled`: every job's own transition still refuses."""
    from app.audiobook_requests.state import RequestStatus, transition

    request = Request.create(audiobook=Audiobook.create(title=TITLE, author=AUTHOR), status="cancelled")
    for step in (
        RequestStatus.SEARCHING,
        RequestStatus.DOWNLOADING,
        RequestStatus.PROCESSING,
        RequestStatus.AWAITING_SEARCH,
        RequestStatus.AVAILABLE,
        RequestStatus.FAILED,
    ):
        assert transition(request.id, step) is False
    assert Request.get_by_id(request.id).status == "cancelled"


@pytest.mark.parametrize("attempts_before,status,blocklisted", [(3, "awaiting_import", False), (4, "warn", True)])
def test_an_import_that_ends_in_warn_blocklists_its_release(dirs, attempts_before, status, blocklisted):
    empty = dirs[0] / SLOW                   # the download holds no audio file
    empty.mkdir()
    (empty / "readme.txt").write_text("no audio here")
    request = Request.create(audiobook=Audiobook.create(title=TITLE, author=AUTHOR), status="downloading",
                             import_attempts=attempts_before)
    DownloadHistory.create(request=request, indexer_name="MyAudioTracker", torrent_name=SLOW, torrent_hash="cd" * 20,
                           download_client="qbittorrent", download_client_id="cd" * 20, download_status="completed",
                           selected=True, download_path=str(empty))
    add_job("organize_files", {"requestId": str(request.id), "audiobookId": str(request.audiobook_id),
                               "downloadPath": str(empty)})
    drain(queue_names_for_group("organize_files"))
    assert Request.get_by_id(request.id).status == status
    rows = list(BlockedRelease.select().where(BlockedRelease.request == request.id))
    assert len(rows) == int(blocklisted)
    if blocklisted:
        assert (rows[0].title, rows[0].info_hash, rows[0].indexer) == (SLOW, "cd" * 20, "MyAudioTracker")
        assert rows[0].reason.startswith("import failed: ") and "Max retries (5) exceeded" in rows[0].reason
        # the automatic search and the interactive one both skip it now
        assert blocklist_for(request.id).blocks(Release(title=SLOW, size=1, seeders=1))
        assert blocklist_for(request.id).blocks(Release(title="renamed", size=1, seeders=1, info_hash="CD" * 20))


# --- the swap, against the real daemons (last: the daemons stop after it) ---------------------------------

def test_picking_a_release_while_downloading_swaps_the_download(daemon, daemon_settings, prowlarr, client):
    daemon_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    slow_folder, slow_hash = book_in_client(download_client(), daemon.download_dir, finished=False)
    better_folder = daemon.download_dir / f"{BETTER} {os.urandom(3).hex()}"
    better_folder.mkdir()
    (better_folder / "Elantris.m4b").write_bytes(os.urandom(300_000))
    better_torrent = make_torrent(better_folder)
    prowlarr.releases = [FakeRelease(SLOW, 300 * MiB, seeders=1),
                         FakeRelease(BETTER, 600 * MiB, seeders=30, torrent=better_torrent)]
    request, row, monitor = _downloading(slow_hash, daemon.kind)

    response = _pick(client, request, BETTER)
    assert response.status_code == 202, response.get_json()
    assert Job.get_by_id(monitor).status == "cancelled"                       # the old download is not watched
    assert download_client().get(slow_hash) is None                           # unfinished: removed …
    wait_for(lambda: not (slow_folder / "01.m4b").exists(), 10, message="the partial files to be deleted")
    assert DownloadHistory.get_by_id(row.id).download_status == "removed"
    blocked = BlockedRelease.get(BlockedRelease.request == request.id)        # … and blocklisted
    assert (blocked.title, blocked.info_hash, blocked.indexer) == (SLOW, slow_hash, "MyAudioTracker")
    assert blocked.reason == f"swapped by an admin for {BETTER!r}"
    assert Request.get_by_id(request.id).status == "searching"
    events = [e.message for e in JobEvent.select().where(JobEvent.job == response.get_json()["jobId"])]
    assert events == [f"Release picked by an admin: {BETTER!r} from MyAudioTracker, swapped for the unfinished "
                      f"download (removed and blocklisted)"]

    # the new one starts in the real client
    drain(queue_names_for_group("download_torrent"))
    assert Request.get_by_id(request.id).status == "downloading"
    better_hash = read_torrent(better_torrent).info_hash
    assert download_client().get(better_hash) is not None
    newest = DownloadHistory.select().where(DownloadHistory.request == request.id).order_by(
        DownloadHistory.created_at.desc()).first()
    assert (newest.torrent_name, newest.download_client_id) == (BETTER, better_hash)
    # later searches skip the swapped release, and it cannot be picked again
    assert {r["title"]: r["rejected"] for r in _releases(client, request)}[SLOW] == "blocklisted"
    assert _pick(client, request, SLOW).status_code == 409

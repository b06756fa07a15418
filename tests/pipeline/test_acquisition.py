"""The acquisition pipeline through the fake Prowlarr and the REAL qbittorrent-nox and transmission-daemon."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from app.integrations.torrent import download_client
from app.integrations.torrentfile import magnet_uri, make_torrent, read_torrent
from app.jobs.queues import queue_names_for_group
from app.models import BlockedRelease, DownloadHistory, Job, JobEvent, Request

from builders import BEARER
from fakes.prowlarr import FakeRelease
from helpers import client_labels, drain

MiB = 1024 * 1024


@pytest.fixture
def configure(daemon, prowlarr, use_settings, redis_conn):
    def apply(**extra):
        return use_settings(**{
            "PROWLARR_URL": prowlarr.url, "PROWLARR_API_KEY": prowlarr.api_key, "DOWNLOAD_CLIENT": daemon.kind,
            "DOWNLOAD_CLIENT_URL": daemon.url, "DOWNLOAD_CLIENT_USERNAME": daemon.username,
            "DOWNLOAD_CLIENT_PASSWORD": daemon.password, "DOWNLOAD_DIR": str(daemon.download_dir),
            "MONITOR_POLL_SECONDS": 1, "DOWNLOAD_STALL_LIMIT_SECONDS": 4, **extra})
    return apply


@pytest.fixture
def pipeline(configure):
    return configure()


def _book_on_disk(daemon, title: str) -> tuple[Path, bytes]:
    """A book folder already complete in DOWNLOAD_DIR, and its .torrent."""
    folder = daemon.download_dir / f"Brandon Sanderson - {title} [M4B]"
    folder.mkdir()
    (folder / f"{title}.m4b").write_bytes(os.urandom(300_000))
    (folder / "cover.jpg").write_bytes(os.urandom(2_000))
    return folder, make_torrent(folder)


def _request(client, title: str) -> str:
    response = client.post("/api/requests", json={"title": title, "author": "Brandon Sanderson"}, headers=BEARER)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["request"]["id"]


def _status(request_id: str) -> str:
    return Request.get_by_id(request_id).status


def _run_search_and_download(request_id: str) -> None:
    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))


def _monitor_until(predicate, timeout: float = 40) -> None:
    drain(queue_names_for_group("monitor_download"), until=predicate, timeout=timeout)


def _events(job_type: str, request_id: str) -> list[str]:
    job = Job.get((Job.type == job_type) & (Job.request == request_id))
    return [e.message for e in JobEvent.select().where(JobEvent.job == job.id).order_by(JobEvent.created_at)]


def test_a_torrent_whose_data_is_present_completes_and_organize_is_enqueued(pipeline, daemon, prowlarr, client):
    title = f"The Way of Kings {uuid.uuid4().hex[:6]}"
    folder, torrent = _book_on_disk(daemon, title)
    prowlarr.releases = [
        FakeRelease("Someone Else - Cooking Basics [MP3]", 200 * MiB, seeders=50, torrent=torrent),
        FakeRelease(f"Brandon Sanderson - {title} (Unabridged) [M4B]", 700 * MiB, seeders=25, torrent=torrent),
        FakeRelease(f"Brandon Sanderson - {title} [MP3]", 400 * MiB, seeders=0, torrent=torrent),
    ]
    request_id = _request(client, title)
    _run_search_and_download(request_id)
    assert _status(request_id) == "downloading"
    assert prowlarr.searches[0]["categories"] == ["3030"]

    history = DownloadHistory.get(DownloadHistory.request == request_id)
    assert history.download_client == daemon.kind and history.download_client_id == read_torrent(torrent).info_hash
    assert history.torrent_name.endswith("(Unabridged) [M4B]") and history.selected

    _monitor_until(lambda: DownloadHistory.get_by_id(history.id).download_status == "completed")
    history = DownloadHistory.get_by_id(history.id)
    assert Path(history.download_path) == folder
    assert Request.get_by_id(request_id).progress == 100 and _status(request_id) == "downloading"
    organize = Job.get((Job.type == "organize_files") & (Job.request == request_id))
    assert organize.payload["downloadPath"] == str(folder) and organize.priority == 10
    monitor = Job.get((Job.type == "monitor_download") & (Job.request == request_id))
    assert monitor.status == "completed" and monitor.attempts == 1  # one row, polls are not attempts
    search_events = JobEvent.select().where(JobEvent.job == Job.get((Job.type == "search_indexers")
                                                                    & (Job.request == request_id)).id)
    top = next(e.metadata["top"] for e in search_events if e.metadata and "top" in e.metadata)
    # the release without seeders is dropped before ranking; the others are ranked, best first
    assert [t["title"].split(" - ")[0] for t in top] == ["Brandon Sanderson", "Someone Else"]
    assert top[0]["title"].endswith("(Unabridged) [M4B]") and top[0]["rejected"] is None
    assert top[1]["rejected"].startswith("title words missing") and "breakdown" in top[0]
    assert download_client().get(history.download_client_id).name == folder.name


def test_a_magnet_with_no_peers_stays_downloading_then_hits_the_stall_limit(pipeline, daemon, prowlarr, client):
    title = f"Elantris {uuid.uuid4().hex[:6]}"
    info_hash = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    prowlarr.releases = [FakeRelease(f"Brandon Sanderson - {title} [M4B]", 500 * MiB, seeders=3,
                                     magnet=magnet_uri(info_hash, f"Brandon Sanderson - {title}"))]
    request_id = _request(client, title)
    _run_search_and_download(request_id)
    assert download_client().get(info_hash) is not None
    seen = set()

    def stalled():
        seen.add(_status(request_id))
        return _status(request_id) != "downloading"

    _monitor_until(stalled, timeout=60)
    assert "downloading" in seen
    request = Request.get_by_id(request_id)
    assert request.status == "awaiting_search" and "stalled" in request.error_message
    assert BlockedRelease.get(BlockedRelease.request == request_id).info_hash == info_hash
    assert download_client().get(info_hash) is None  # removed from the client
    assert any("Download stalled" in m for m in _events("monitor_download", request_id))


def test_a_client_restart_mid_monitor_is_transient_not_a_failure(configure, daemon, prowlarr, client):
    configure(DOWNLOAD_STALL_LIMIT_SECONDS=300)  # a restart re-verifies the data; that is no stall
    title = f"Mistborn {uuid.uuid4().hex[:6]}"
    _, torrent = _book_on_disk(daemon, title)
    prowlarr.releases = [FakeRelease(f"Brandon Sanderson - {title} [M4B]", 600 * MiB, seeders=9, torrent=torrent)]
    request_id = _request(client, title)
    _run_search_and_download(request_id)
    monitor = Job.get((Job.type == "monitor_download") & (Job.request == request_id))
    info_hash = read_torrent(torrent).info_hash
    # let the client finish verifying first: Transmission killed mid-verify comes back stopped
    from app.pipeline.download_state import DownloadState

    from helpers import wait_for

    wait_for(lambda: download_client().get(info_hash).state is DownloadState.COMPLETE, 20, message="verified")

    daemon.stop()
    try:
        _monitor_until(lambda: Job.get_by_id(monitor.id).polls >= 1, timeout=30)
        row = Job.get_by_id(monitor.id)
        assert row.status == "delayed" and row.attempts == 1 and row.payload["connectionFailures"] == 1
        assert _status(request_id) == "downloading"
    finally:
        daemon.start()
    _monitor_until(lambda: Job.get_by_id(monitor.id).status == "completed", timeout=60)
    assert _status(request_id) == "downloading" and Request.get_by_id(request_id).progress == 100
    assert any("transient" in m for m in _events("monitor_download", request_id))


def test_the_torrent_goes_into_the_category_with_the_request_tags(configure, daemon, prowlarr, client):
    """DOWNLOAD_CLIENT_CATEGORY and the request's id reach the client: qBittorrent's category and tags (the new
    category is created without a save path, so DOWNLOAD_DIR is sent), Transmission's labels."""
    category = f"audiobooks-{uuid.uuid4().hex[:6]}"
    configure(DOWNLOAD_CLIENT_CATEGORY=category)
    title = f"Oathbringer {uuid.uuid4().hex[:6]}"
    _, torrent = _book_on_disk(daemon, title)
    prowlarr.releases = [FakeRelease(f"Brandon Sanderson - {title} [M4B]", 600 * MiB, torrent=torrent)]
    request_id = _request(client, title)
    _run_search_and_download(request_id)
    filed = client_labels(download_client(), read_torrent(torrent).info_hash)
    if daemon.kind == "qbittorrent":
        assert filed == {"category": category, "tags": {"readmeabook", f"request-{request_id}"},
                         "save_path": str(daemon.download_dir), "auto_tmm": False}
    else:
        assert filed == {"labels": [category, "readmeabook", f"request-{request_id}"],
                         "save_path": str(daemon.download_dir)}


@pytest.mark.parametrize("inside", [True, False])
def test_a_category_with_its_own_save_path_decides_where_the_download_goes(inside, qbt5, prowlarr, use_settings,
                                                                           redis_conn, client):
    """Through the download job and the fake qBittorrent 5.2: no savepath is sent, the torrent lands in the
    category's folder, and a folder outside DOWNLOAD_DIR (which the import would refuse) is a warning now."""
    downloads = qbt5.default_save_path
    own = f"{downloads}/audiobooks" if inside else "/data/elsewhere"
    qbt5.categories["audiobooks"] = own
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key, DOWNLOAD_CLIENT="qbittorrent",
                 DOWNLOAD_CLIENT_URL=qbt5.url, DOWNLOAD_CLIENT_USERNAME=qbt5.username,
                 DOWNLOAD_CLIENT_PASSWORD=qbt5.password, DOWNLOAD_DIR=downloads, DOWNLOAD_CLIENT_CATEGORY="audiobooks")
    title, info_hash = f"Rhythm of War {uuid.uuid4().hex[:6]}", uuid.uuid4().hex + uuid.uuid4().hex[:8]
    prowlarr.releases = [FakeRelease(f"Brandon Sanderson - {title} [M4B]", 500 * MiB,
                                     magnet=magnet_uri(info_hash, title))]
    request_id = _request(client, title)
    _run_search_and_download(request_id)
    torrent = qbt5.torrents[info_hash]
    assert (torrent["save_path"], torrent["auto_tmm"], torrent["category"]) == (own, True, "audiobooks")
    assert "savepath" not in qbt5.last_add and torrent["tags"] == f"readmeabook, request-{request_id}"
    events = _events("download_torrent", request_id)
    assert any(f"category 'audiobooks', its save path {own}" in m for m in events)
    assert any("outside DOWNLOAD_DIR" in m and own in m for m in events) is not inside
    assert _status(request_id) == "downloading"


def test_a_torrent_already_in_the_client_is_not_added_twice(pipeline, daemon, prowlarr, client):
    title = f"Warbreaker {uuid.uuid4().hex[:6]}"
    _, torrent = _book_on_disk(daemon, title)
    download_client().add(torrent=torrent, category="readmeabook", tags=["manual"], save_path=str(daemon.download_dir))
    prowlarr.releases = [FakeRelease(f"Brandon Sanderson - {title} [M4B]", 600 * MiB, torrent=torrent)]
    request_id = _request(client, title)
    _run_search_and_download(request_id)
    assert any("not added twice" in m for m in _events("download_torrent", request_id))
    assert _status(request_id) == "downloading"


def test_a_429_on_the_best_release_falls_back_to_the_next(pipeline, daemon, prowlarr, client):
    title = f"Skyward {uuid.uuid4().hex[:6]}"
    _, torrent = _book_on_disk(daemon, title)
    prowlarr.releases = [
        FakeRelease(f"Brandon Sanderson - {title} (Unabridged) [M4B]", 700 * MiB, seeders=90, error=429),
        FakeRelease(f"Brandon Sanderson - {title} [M4B]", 650 * MiB, seeders=5, torrent=torrent),
    ]
    request_id = _request(client, title)
    _run_search_and_download(request_id)
    history = DownloadHistory.get(DownloadHistory.request == request_id)
    assert history.torrent_name == f"Brandon Sanderson - {title} [M4B]"
    assert any("unavailable" in m and "429" in m for m in _events("download_torrent", request_id))

"""The stall rule: only a torrent the client lets download, and that makes no progress, stalls; what a stall removes.

Pure decisions by table, then the REAL qbittorrent-nox and transmission-daemon (tests/daemons.py) with a
2-second stall limit: a paused torrent outlives the limit, an allowed magnet with no peers does not.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
import requests

from app.integrations.torrent import download_client
from app.integrations.torrentfile import magnet_uri
from app.integrations.transmission import TransmissionClient
from app.jobs.queues import queue_names_for_group
from app.models import Audiobook, BlockedRelease, DownloadHistory, Job, JobEvent, Request, utcnow
from app.pipeline.download_state import DownloadState, counts_toward_stall, qbittorrent_state, transmission_state
from app.pipeline.monitor_policy import StallClock, StallRemoval, TorrentUser, next_stall_clock, stall_removal

from builders import BEARER
from fakes.prowlarr import FakeRelease
from helpers import drain, wait_for

MiB = 1024 * 1024


# --- which states count toward the stall limit (pure) ------------------------------------------------------

@pytest.mark.parametrize("state,progress,counts", [
    # allowed to download: no new bytes is no progress
    ("downloading", 0.4, True), ("stalledDL", 0, True), ("forcedDL", 0.2, True),
    ("metaDL", 0, True), ("forcedMetaDL", 0, True),          # a magnet allowed to fetch its metadata
    ("stalledUP", 0.99, True), ("uploading", 0.5, True),      # seeding side but data missing: still downloading
    # held by the client or an admin: time does not count
    ("pausedDL", 0.5, False), ("pausedDL", 0, False),          # 4.x paused (a paused magnet too)
    ("stoppedDL", 0.5, False), ("stoppedDL", 0, False),        # 5.x stopped
    ("pausedUP", 0.9, False), ("stoppedUP", 0.9, False),
    ("queuedDL", 0, False), ("queuedUP", 0.9, False),
    ("checkingDL", 0.3, False), ("checkingResumeData", 0, False), ("checkingUP", 1, False),
    ("moving", 0.5, False), ("moving", 1, False), ("allocating", 0, False),
    # handled before the stall rule, or not known to be allowed
    ("uploading", 1, False), ("stalledUP", 1, False), ("stoppedUP", 1, False),
    ("error", 0.5, False), ("missingFiles", 1, False), ("unknown", 0.3, False), ("somethingNew", 0.2, False),
])
def test_qbittorrent_states_that_count_toward_a_stall(state, progress, counts):
    assert counts_toward_stall(qbittorrent_state(state, progress)) is counts


@pytest.mark.parametrize("status,percent,metadata,counts", [
    (4, 0.3, 1, True), (4, 0, 0, True),        # downloading; a magnet fetching its metadata
    (6, 0.9, 1, True),                         # seeding what it has, the rest still wanted
    (0, 0.5, 1, False), (0, 0, 0, False),      # stopped (a stopped magnet too)
    (1, 0, 1, False), (2, 0.5, 1, False),      # queued to verify, verifying
    (3, 0, 1, False), (5, 0.9, 1, False),      # queued to download, queued to seed
    (6, 1, 1, False), (0, 1, 1, False),        # complete
])
def test_transmission_states_that_count_toward_a_stall(status, percent, metadata, counts):
    assert counts_toward_stall(transmission_state(status, percent, 0, metadata)) is counts


T0 = datetime(2025, 1, 1, 12, 0, 0)


@pytest.mark.parametrize("previous,allowed,moved,expected", [
    (StallClock(None, 0), True, True, StallClock(T0, 0)),           # first poll: the clock starts
    (StallClock(T0 - timedelta(hours=1), 3), True, False, StallClock(T0 - timedelta(hours=1), 4)),  # still motionless
    (StallClock(T0 - timedelta(hours=1), 3), True, True, StallClock(T0, 0)),    # new bytes: restart
    (StallClock(T0 - timedelta(hours=1), 3), False, False, StallClock(None, 4)),  # paused: held, backing off
    (StallClock(None, 7), False, False, StallClock(None, 8)),
    (StallClock(None, 7), True, False, StallClock(T0, 0)),          # allowed again: the clock restarts now
])
def test_the_stall_clock_is_held_while_the_torrent_is_not_allowed_to_download(previous, allowed, moved, expected):
    assert next_stall_clock(previous, T0, allowed=allowed, moved=moved) == expected


OTHER = TorrentUser("r2", "downloading", "downloading", 0)


@pytest.mark.parametrize("progress,others,removal", [
    (0.3, [], StallRemoval.WITH_FILES),        # incomplete, nobody else: torrent and partial files go
    (0.0, [], StallRemoval.WITH_FILES),        # a magnet without metadata has no files anyway
    (1.0, [], StallRemoval.TORRENT_ONLY),      # the data is complete: keep it
    (0.3, [OTHER], StallRemoval.LEAVE),        # another request uses it: leave the torrent alone
    (1.0, [OTHER], StallRemoval.LEAVE),
])
def test_what_a_stall_removes(progress, others, removal):
    assert stall_removal(progress, others) is removal


# --- against the real daemons -------------------------------------------------------------------------------

@pytest.fixture
def pipeline(daemon, prowlarr, use_settings, redis_conn):
    return use_settings(
        PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key, DOWNLOAD_CLIENT=daemon.kind,
        DOWNLOAD_CLIENT_URL=daemon.url, DOWNLOAD_CLIENT_USERNAME=daemon.username,
        DOWNLOAD_CLIENT_PASSWORD=daemon.password, DOWNLOAD_DIR=str(daemon.download_dir),
        MONITOR_POLL_SECONDS=0.5, DOWNLOAD_STALL_LIMIT_SECONDS=2)


def _set_running(daemon, info_hash: str, running: bool) -> None:
    """Pause or resume a torrent through the client's own API, as an admin would."""
    if daemon.kind == "transmission":
        client = TransmissionClient(daemon.url, daemon.username, daemon.password)
        client.call("torrent-start" if running else "torrent-stop", {"ids": [info_hash]})
        return
    session = requests.Session()
    session.post(f"{daemon.url}/api/v2/auth/login", data={"username": daemon.username, "password": daemon.password},
                 timeout=5)
    path = "resume" if running else "pause"
    response = session.post(f"{daemon.url}/api/v2/torrents/{path}", data={"hashes": info_hash}, timeout=5)
    if response.status_code == 404:  # qBittorrent 5.x renamed pause/resume to stop/start
        response = session.post(f"{daemon.url}/api/v2/torrents/{'start' if running else 'stop'}",
                                data={"hashes": info_hash}, timeout=5)
    assert response.status_code == 200, response.text


def _magnet_request(client, prowlarr, title: str) -> tuple[str, str]:
    """A request whose only release is a magnet for a random hash (no peer will ever have it)."""
    info_hash = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    prowlarr.releases.append(FakeRelease(f"Brandon Sanderson - {title} [M4B]", 500 * MiB, seeders=3,
                                         magnet=magnet_uri(info_hash, f"Brandon Sanderson - {title}")))
    response = client.post("/api/requests", json={"title": title, "author": "Brandon Sanderson"}, headers=BEARER)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["request"]["id"], info_hash


def _search_and_add() -> None:
    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))


def _monitor_until(predicate, timeout: float = 60) -> None:
    drain(queue_names_for_group("monitor_download"), until=predicate, timeout=timeout)


def _status(request_id: str) -> str:
    return Request.get_by_id(request_id).status


def _monitor(request_id: str) -> Job:
    return Job.get((Job.type == "monitor_download") & (Job.request == request_id))


def _events(request_id: str) -> list[str]:
    return [e.message for e in JobEvent.select().where(JobEvent.job == _monitor(request_id).id)
            .order_by(JobEvent.created_at)]


def test_a_paused_torrent_outlives_the_stall_limit_while_an_allowed_one_with_no_peers_stalls(
        pipeline, daemon, prowlarr, client):
    paused_id, paused_hash = _magnet_request(client, prowlarr, f"Elantris {uuid.uuid4().hex[:6]}")
    allowed_id, allowed_hash = _magnet_request(client, prowlarr, f"Warbreaker {uuid.uuid4().hex[:6]}")
    _search_and_add()
    _set_running(daemon, paused_hash, False)
    wait_for(lambda: download_client().get(paused_hash).state is DownloadState.PAUSED, 10, message="paused")

    # the 4th poll of the paused one comes ≥ 7 s after its first: two polls past the 2 s limit
    _monitor_until(lambda: _status(allowed_id) != "downloading"
                   and (_monitor(paused_id).polls >= 4 or _status(paused_id) != "downloading"))

    assert _status(allowed_id) == "awaiting_search"                  # allowed, no peers: stalled …
    assert download_client().get(allowed_hash) is None               # … and removed
    assert BlockedRelease.get(BlockedRelease.request == allowed_id).info_hash == allowed_hash
    assert _status(paused_id) == "downloading"                       # paused: not a stall
    assert download_client().get(paused_hash).state is DownloadState.PAUSED
    assert _monitor(paused_id).payload["motionlessSince"] is None
    assert any("stall clock is held" in m for m in _events(paused_id))

    # resumed, it is allowed again: the clock starts then, and with still no peers it stalls after the limit
    resumed_at = utcnow()
    _set_running(daemon, paused_hash, True)
    _monitor_until(lambda: _status(paused_id) != "downloading")
    assert _status(paused_id) == "awaiting_search" and download_client().get(paused_hash) is None
    assert datetime.fromisoformat(_monitor(paused_id).payload["motionlessSince"]) >= resumed_at
    assert any("Download stalled" in m for m in _events(paused_id))


def test_a_stalled_torrent_another_request_uses_is_left_in_the_client(pipeline, daemon, prowlarr, client):
    request_id, info_hash = _magnet_request(client, prowlarr, f"Mistborn {uuid.uuid4().hex[:6]}")
    _search_and_add()
    other = Request.create(audiobook=Audiobook.create(title="Mistborn box set", author="Brandon Sanderson"),
                           status="downloading")
    DownloadHistory.create(request=other, torrent_hash=info_hash, download_client=daemon.kind,
                           download_client_id=info_hash, download_status="downloading", selected=True)

    _monitor_until(lambda: _status(request_id) != "downloading")

    assert _status(request_id) == "awaiting_search"                  # this request gives up on it …
    assert download_client().get(info_hash) is not None              # … but the other one keeps its torrent
    left = [m for m in _events(request_id) if "left in" in m]
    assert len(left) == 1 and f"request {other.id} (downloading) also uses it" in left[0]

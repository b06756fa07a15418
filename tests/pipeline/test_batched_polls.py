"""Batched polls: every monitor_download reads its torrent from one shared answer of the client per tick
(app/integrations/torrent_snapshot.py), asked once by whichever poll finds it expired; a torrent missing from
it is looked up on its own. On the real qbittorrent-nox and transmission-daemon: one `torrents/info` for the
category, or one `torrent-get` with every hash, for several downloads."""
from __future__ import annotations

import time

import pytest

from app.audiobook_requests.state import RequestStatus
from app.integrations import qbittorrent, torrent_snapshot, transmission
from app.integrations.errors import TransientServiceError
from app.integrations.torrent import download_client
from app.jobs.queues import get_redis, queue_names_for_group
from app.jobs.service import add_job
from app.models import Audiobook, DownloadHistory, Job, Request
from app.pipeline.download_state import DownloadState
from app.pipeline.monitor_policy import snapshot_max_age

from helpers import book_in_client, drain


@pytest.mark.parametrize("base,expected", [(10, 5.0), (60, 5.0), (4, 2.0), (1, 0.5), (0.1, 0.1)])
def test_one_answer_serves_half_a_poll_interval_at_most_five_seconds(base, expected):
    assert snapshot_max_age(base) == expected


def _read(fake_client, info_hash, max_age=5.0):
    return torrent_snapshot.read(get_redis(), "qbittorrent", info_hash, client=lambda: fake_client,
                                 category="readmeabook", monitored=lambda: [info_hash], max_age=max_age)


def test_polls_within_max_age_share_one_call_and_an_expired_answer_is_fetched_again(settings_env, fake_client):
    fake_client.put("aa" * 20, progress=0.25)
    readings = [_read(fake_client, "aa" * 20, max_age=0.3) for _ in range(20)]
    missing = _read(fake_client, "bb" * 20, max_age=0.3)
    assert fake_client.calls == ["snapshot"]
    assert {r.status.progress for r in readings} == {0.25} and all(r.known for r in readings)
    assert missing.known and missing.status is None  # not in the answer: the monitor asks on its own
    time.sleep(0.35)
    fake_client.set("aa" * 20, progress=0.5)
    assert _read(fake_client, "aa" * 20).status.progress == 0.5
    assert fake_client.calls == ["snapshot", "snapshot"]


def test_an_unreachable_client_gives_no_answer_and_frees_the_lock(settings_env, fake_client):
    fake_client.down = True
    assert _read(fake_client, "aa" * 20) == torrent_snapshot.UNKNOWN
    fake_client.down = False
    fake_client.put("aa" * 20)
    assert _read(fake_client, "aa" * 20).status is not None  # the next poll takes the lock at once
    assert fake_client.calls == ["snapshot", "snapshot"]


def test_a_poll_waits_for_the_answer_another_poll_is_fetching(settings_env, fake_client):
    connection = get_redis()
    fake_client.put("aa" * 20, progress=0.75)
    key = torrent_snapshot.KEY.format(kind="qbittorrent")
    connection.set(f"{key}:lock", "another-poll", px=2000)
    started = time.monotonic()
    import threading

    timer = threading.Timer(0.3, lambda: torrent_snapshot.store(connection, key, fake_client.snapshot("", []), 5))
    timer.start()
    reading = _read(fake_client, "aa" * 20)
    timer.join()
    assert reading.status.progress == 0.75 and 0.25 < time.monotonic() - started < 2
    assert fake_client.calls == ["snapshot"]  # the other poll's call only


def test_while_another_poll_fetches_the_previous_answer_is_read_without_waiting(settings_env, fake_client):
    fake_client.put("aa" * 20, progress=0.25)
    assert _read(fake_client, "aa" * 20, max_age=0.3).status.progress == 0.25
    time.sleep(0.35)  # no longer fresh, still kept
    key = torrent_snapshot.KEY.format(kind="qbittorrent")
    get_redis().set(f"{key}:lock", "another-poll", px=2000)
    started = time.monotonic()
    assert _read(fake_client, "aa" * 20, max_age=0.3).status.progress == 0.25
    assert time.monotonic() - started < 0.2 and fake_client.calls == ["snapshot"]


def _monitored(info_hash: str, kind: str, title: str) -> str:
    book = Audiobook.create(title=title, author="Brandon Sanderson")
    request = Request.create(audiobook=book, status=RequestStatus.DOWNLOADING.value)
    history = DownloadHistory.create(request=request, selected=True, download_client=kind, download_client_id=info_hash,
                                     torrent_hash=info_hash, download_status="downloading")
    return add_job("monitor_download", {"requestId": str(request.id), "downloadHistoryId": str(history.id),
                                        "downloadClientId": info_hash, "downloadClient": kind})


def test_several_downloads_are_polled_with_one_call_to_the_real_client(daemon, daemon_settings, monkeypatch,
                                                                         tmp_path):
    daemon_settings(MONITOR_POLL_SECONDS=10)
    client = download_client()
    hashes = [book_in_client(client, daemon.download_dir, finished=False, name=f"Book {n}")[1] for n in range(3)]
    calls: list[str] = []

    def counting(real):
        def request(session, service, method, url, **kwargs):
            body = kwargs.get("json") or {}
            calls.append(body.get("method") or f"{url.rsplit('/api/v2/', 1)[-1]} {sorted(kwargs.get('params') or {})}")
            return real(session, service, method, url, **kwargs)
        return request

    monkeypatch.setattr(qbittorrent, "request", counting(qbittorrent.request))
    monkeypatch.setattr(transmission, "request", counting(transmission.request))
    jobs = [_monitored(h, daemon.kind, f"Book {n}") for n, h in enumerate(hashes)]
    drain(queue_names_for_group("monitor_download"),
          until=lambda: all(Job.get_by_id(j).polls >= 1 for j in jobs), timeout=30)
    one_call = {"qbittorrent": ["torrents/info ['category']"], "transmission": ["torrent-get"]}[daemon.kind]
    assert calls == one_call
    for job_id in jobs:
        row = Job.get_by_id(job_id)
        history = DownloadHistory.get_by_id(row.payload["downloadHistoryId"])
        assert row.status == "delayed" and history.download_status == DownloadState.DOWNLOADING.value
        assert 0 < Request.get_by_id(row.request_id).progress < 100


def test_a_torrent_outside_the_category_is_looked_up_on_its_own(qbittorrent, use_settings, redis_conn, monkeypatch):
    use_settings(DOWNLOAD_CLIENT="qbittorrent", DOWNLOAD_CLIENT_URL=qbittorrent.url,
                 DOWNLOAD_CLIENT_USERNAME=qbittorrent.username, DOWNLOAD_CLIENT_PASSWORD=qbittorrent.password,
                 DOWNLOAD_DIR=str(qbittorrent.download_dir), DOWNLOAD_CLIENT_CATEGORY="elsewhere")
    client = download_client()
    _, info_hash = book_in_client(client, qbittorrent.download_dir, finished=False, name="Outside")  # readmeabook
    looked_up: list[str] = []
    real_get = client.get
    monkeypatch.setattr(client, "get", lambda h: looked_up.append(h) or real_get(h))
    job_id = _monitored(info_hash, "qbittorrent", "Outside")
    drain(queue_names_for_group("monitor_download"), until=lambda: Job.get_by_id(job_id).polls >= 1, timeout=30)
    assert looked_up == [info_hash] and Job.get_by_id(job_id).status == "delayed"


def test_a_failed_snapshot_falls_back_to_the_look_up_with_its_retries(settings_env, fake_client, monkeypatch):
    fake_client.put("cc" * 20, progress=0.3)

    def refuse(category, hashes):
        raise TransientServiceError("Fake", "snapshot: cannot connect")

    monkeypatch.setattr(fake_client, "snapshot", refuse)
    job_id = _monitored("cc" * 20, "qbittorrent", "Fallback")
    drain(queue_names_for_group("monitor_download"), until=lambda: Job.get_by_id(job_id).polls >= 1, timeout=30)
    assert fake_client.calls == ["get"] and Request.get(Request.id == Job.get_by_id(job_id).request_id).progress == 30

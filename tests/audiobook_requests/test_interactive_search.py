"""Interactive search. GET /api/requests/<id>/releases runs the Prowlarr search now and lists
every result ranked; POST {guid} queues download_torrent with that release (rank ignored, blocklist honoured).

Through HTTP against real PostgreSQL and Redis and the fake Prowlarr; the queued download_torrent job is run
by a real worker (in-process, burst) against the in-memory download client, to show it accepts the payload.
"""
from __future__ import annotations

import re
import socket

import pytest

from app.audiobook_requests import interactive
from app.integrations.torrentfile import make_torrent, read_torrent
from app.jobs.queues import queue_names_for_group
from app.models import Audiobook, BlockedRelease, DownloadHistory, Job, JobEvent, Request
from app.pipeline.ranking import Release, rank_release
from app.pipeline.release_search import Blocklist, automatic_search, rank_all, release_key

from builders import BEARER
from fakes.prowlarr import FakeRelease
from helpers import drain

MiB = 1024 * 1024
TITLE, AUTHOR = "The Way of Kings", "Brandon Sanderson"
BEST = f"{AUTHOR} - {TITLE} (Unabridged) [M4B]"
BLOCKED = f"{AUTHOR} - {TITLE} [MP3]"
UNSEEDED = f"{AUTHOR} - {TITLE} [FLAC]"
OTHER_BOOK = "Someone Else - Cooking Basics [MP3]"


@pytest.fixture
def configured(prowlarr, use_settings, redis_conn):
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    prowlarr.releases = [
        FakeRelease(OTHER_BOOK, 200 * MiB, seeders=50),
        FakeRelease(BEST, 700 * MiB, seeders=25),
        FakeRelease(BLOCKED, 400 * MiB, seeders=40),
        FakeRelease(UNSEEDED, 900 * MiB, seeders=0),
    ]
    return prowlarr


def _request(status: str = "awaiting_search", asin: str | None = "B003P2WO5E") -> Request:
    book = Audiobook.create(title=TITLE, author=AUTHOR, audible_asin=asin)
    request = Request.create(audiobook=book, status=status)
    BlockedRelease.create(request=request, title=BLOCKED, info_hash=None, reason="stalled")
    return request


def _search(client, request) -> list[dict]:
    response = client.get(f"/api/requests/{request.id}/releases", headers=BEARER)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["releases"]


def _guid(releases, title) -> str:
    return next(r["guid"] for r in releases if r["title"] == title)


def test_every_result_is_listed_ranked_with_its_breakdown_and_why_it_is_rejected(client, configured):
    request = _request()
    releases = _search(client, request)
    assert configured.searches[0]["query"] == [f"{TITLE} {AUTHOR}"] and configured.searches[0]["categories"] == ["3030"]
    assert len(releases) == 4                                             # none dropped
    assert [r["score"] for r in releases] == sorted((r["score"] for r in releases), reverse=True)
    by_title = {r["title"]: r for r in releases}
    assert by_title[BEST]["rejected"] is None and releases[0]["title"] == BEST
    assert by_title[BLOCKED]["rejected"] == "blocklisted"
    assert by_title[UNSEEDED]["rejected"] == "no seeders"
    assert by_title[OTHER_BOOK]["rejected"].startswith("title words missing")
    best = by_title[BEST]
    assert set(best) == {"guid", "title", "indexer", "size", "seeders", "score", "breakdown", "rejected"}
    assert set(best["breakdown"]) == {"format", "seeders", "size", "match"}
    assert best["indexer"] == "MyAudioTracker" and best["size"] == 700 * MiB and best["seeders"] == 25
    assert best["guid"] == "https://tracker.example/torrents/1"
    assert best["breakdown"]["format"] == 10.0 and best["score"] == round(sum(best["breakdown"].values()), 1)


def test_download_queues_the_same_payload_as_the_automatic_search_and_the_job_runs(client, configured,
                                                                                 fake_client, redis_conn, bearer):
    torrent = make_torrent_bytes()
    configured.releases[1].torrent = torrent
    request = _request()
    releases = _search(client, request)
    response = client.post(f"/api/requests/{request.id}/releases", json={"guid": _guid(releases, BEST)},
                           headers=bearer)
    assert response.status_code == 202, response.get_json()
    job = Job.get_by_id(response.get_json()["jobId"])
    assert job.type == "download_torrent" and job.priority == 10 and job.status == "pending"
    assert Request.get_by_id(request.id).status == "searching"            # what download_torrent enters from
    payload = job.payload
    assert payload["requestId"] == str(request.id) and payload["alternateTorrents"] == []
    assert payload["audiobook"] == {"id": str(request.audiobook_id), "title": TITLE, "author": AUTHOR,
                                    "asin": "B003P2WO5E"}
    assert payload["torrent"]["title"] == BEST and "apikey" not in payload["torrent"]["downloadUrl"]
    assert payload["interactive"] is True
    events = [e.message for e in JobEvent.select().where(JobEvent.job == job.id)]
    assert events == [f"Release picked by an admin: {BEST!r} from MyAudioTracker"]

    # the worker accepts the picked release: the request goes downloading with that torrent
    drain(queue_names_for_group("download_torrent"), until=lambda: Job.get_by_id(job.id).status == "completed")
    assert Request.get_by_id(request.id).status == "downloading"
    history = DownloadHistory.get(DownloadHistory.request == request.id)
    assert history.torrent_name == BEST and history.download_client_id == read_torrent(torrent).info_hash

    # the automatic search builds the same shape (same keys, same torrent keys)
    auto_request = Request.create(audiobook=Audiobook.create(title=TITLE, author=AUTHOR), status="pending")
    from app.audiobook_requests.service import enqueue_search

    enqueue_search(auto_request)
    drain(queue_names_for_group("search_indexers"))
    auto = Job.get((Job.type == "download_torrent") & (Job.request == auto_request.id))
    assert set(auto.payload) | {"interactive"} == set(payload)
    assert set(auto.payload["torrent"]) == set(payload["torrent"]) and auto.payload["torrent"]["title"] == BEST


def make_torrent_bytes() -> bytes:
    import os
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp()) / "book"
    folder.mkdir()
    (folder / "book.m4b").write_bytes(os.urandom(50_000))
    return make_torrent(folder)


def test_the_rank_is_ignored_but_the_blocklist_is_not(client, configured, redis_conn, bearer):
    request = _request()
    releases = _search(client, request)
    picked = client.post(f"/api/requests/{request.id}/releases", json={"guid": _guid(releases, UNSEEDED)},
                         headers=bearer)
    assert picked.status_code == 202                                       # "no seeders" is advice only
    Request.update(status="awaiting_search").where(Request.id == request.id).execute()
    blocked = client.post(f"/api/requests/{request.id}/releases", json={"guid": _guid(releases, BLOCKED)},
                          headers=bearer)
    assert blocked.status_code == 409 and "blocklisted" in blocked.get_json()["error"]
    # blocklisted after the search was shown: still refused
    BlockedRelease.create(request=request, title=BEST, reason="stalled")
    late = client.post(f"/api/requests/{request.id}/releases", json={"guid": _guid(releases, BEST)}, headers=bearer)
    assert late.status_code == 409 and "blocklisted" in late.get_json()["error"]
    assert Job.select().where(Job.type == "download_torrent").count() == 1
    assert Request.get_by_id(request.id).status == "awaiting_search"


def test_unknown_missing_and_unsearched_guids(client, configured, redis_conn, bearer):
    request = _request()
    before = client.post(f"/api/requests/{request.id}/releases", json={"guid": "https://tracker.example/torrents/1"},
                         headers=bearer)
    assert before.status_code == 404 and "search again" in before.get_json()["error"]
    _search(client, request)
    assert 3500 < redis_conn.ttl(f"rmab:releases:{request.id}") <= 3600
    unknown = client.post(f"/api/requests/{request.id}/releases", json={"guid": "nope"}, headers=bearer)
    assert unknown.status_code == 404
    for body in ({}, {"guid": ""}, {"guid": 5}, ["guid"]):
        missing = client.post(f"/api/requests/{request.id}/releases", json=body, headers=bearer)
        assert missing.status_code == 400 and "guid is required" in missing.get_json()["error"]
    assert client.get("/api/requests/nope/releases", headers=bearer).status_code == 404
    assert Job.select().where(Job.type == "download_torrent").count() == 0


@pytest.mark.parametrize("status", ["pending", "searching", "awaiting_search", "failed", "warn", "awaiting_import"])
def test_a_waiting_or_failed_request_moves_to_searching_and_queued_jobs_are_cancelled(client, configured, status,
                                                                                   bearer):
    request = _request(status)
    queued = Job.create(type="search_indexers", status="pending", request=request, rq_job_id=f"job-x-{status}")
    releases = _search(client, request)
    response = client.post(f"/api/requests/{request.id}/releases", json={"guid": _guid(releases, BEST)},
                           headers=bearer)
    assert response.status_code == 202
    row = Request.get_by_id(request.id)
    assert row.status == "searching" and row.error_message is None
    assert Job.get_by_id(queued.id).status == "cancelled"                  # no second, automatic pick


@pytest.mark.parametrize("status", ["processing", "downloaded", "available", "deleted"])
def test_a_request_past_the_search_or_finished_is_refused(client, configured, status, bearer):
    request = _request(status)
    Request.update(status="awaiting_search").where(Request.id == request.id).execute()
    releases = _search(client, request)
    Request.update(status=status).where(Request.id == request.id).execute()
    response = client.post(f"/api/requests/{request.id}/releases", json={"guid": _guid(releases, BEST)},
                           headers=bearer)
    assert response.status_code == 409 and f"status {status}" in response.get_json()["error"]
    assert Request.get_by_id(request.id).status == status and Job.select().count() == 0


def test_prowlarr_not_configured_is_a_clear_409(client, redis_conn, bearer):
    request = _request()
    response = client.get(f"/api/requests/{request.id}/releases", headers=bearer)
    assert response.status_code == 409
    assert response.get_json() == {"success": False,
                                   "error": "Prowlarr is not configured: set PROWLARR_URL and PROWLARR_API_KEY"}


def test_prowlarr_unreachable_or_failing_is_a_502(client, configured, use_settings, redis_conn, bearer):
    request = _request()
    configured.search_status = 500
    failing = client.get(f"/api/requests/{request.id}/releases", headers=bearer)
    assert failing.status_code == 502 and "HTTP 500" in failing.get_json()["error"]
    configured.search_status = 200
    use_settings(PROWLARR_URL=configured.url, PROWLARR_API_KEY="wrong-key")
    refused = client.get(f"/api/requests/{request.id}/releases", headers=bearer)
    assert refused.status_code == 502 and "PROWLARR_API_KEY" in refused.get_json()["error"]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    use_settings(PROWLARR_URL=f"http://127.0.0.1:{port}", PROWLARR_API_KEY="k")
    down = client.get(f"/api/requests/{request.id}/releases", headers=bearer)
    assert down.status_code == 502 and "cannot connect" in down.get_json()["error"]
    assert down.get_json()["success"] is False


def test_a_prowlarr_that_never_answers_times_out_as_a_502(client, use_settings, monkeypatch, redis_conn, bearer):
    monkeypatch.setattr(interactive, "SEARCH_TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:                      # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        use_settings(PROWLARR_URL=f"http://127.0.0.1:{silent.getsockname()[1]}", PROWLARR_API_KEY="k")
        request = _request()
        response = client.get(f"/api/requests/{request.id}/releases", headers=bearer)
    assert response.status_code == 502 and "timed out" in response.get_json()["error"]


def test_the_endpoints_need_an_admin_and_csrf_for_a_session(client, admin_client, configured):
    request = _request()
    assert client.get(f"/api/requests/{request.id}/releases").status_code == 401
    assert client.post(f"/api/requests/{request.id}/releases", json={"guid": "x"}).status_code == 401
    releases = admin_client.get(f"/api/requests/{request.id}/releases").get_json()["releases"]
    body = {"guid": _guid(releases, BEST)}
    assert admin_client.post(f"/api/requests/{request.id}/releases", json=body).status_code == 400  # no CSRF
    page = admin_client.get("/admin/requests").get_data(as_text=True)
    token = re.search(r'data-csrf-token="([^"]+)"', page).group(1)
    picked = admin_client.post(f"/api/requests/{request.id}/releases", json=body, headers={"X-CSRFToken": token})
    assert picked.status_code == 202


# --- the pure part (app/pipeline/release_search.py) -----------------------------------------------------

def _release(title: str, seeders: int | None = 10, info_hash: str | None = None, protocol: str = "torrent",
             guid: str = "g", size: int = 500 * MiB) -> Release:
    return Release(title=title, size=size, seeders=seeders, info_hash=info_hash, protocol=protocol, guid=guid,
                   download_url="http://x/1")


@pytest.mark.parametrize("release,blocked", [
    (_release("Brandon Sanderson - The Way of Kings [MP3]"), True),           # same title
    (_release("brandon sanderson   the way of kings mp3"), True),             # normalised the same
    (_release("Other", info_hash="ABCDEF"), True),                            # by info hash, any case
    (_release("Other", info_hash="123456"), False),
    (_release("Brandon Sanderson - The Way of Kings [M4B]"), False),
])
def test_blocklist(release, blocked):
    blocklist = Blocklist.of([("Brandon Sanderson - The Way of Kings [MP3]", None), ("x", "abcdef"), (None, None)])
    assert blocklist.blocks(release) is blocked


@pytest.mark.parametrize("release,rejected", [
    (_release(BLOCKED, seeders=0), "blocklisted"),                            # blocklisted wins
    (_release(UNSEEDED, seeders=0), "no seeders"),
    (_release(UNSEEDED, seeders=None, protocol="usenet"), None),               # usenet has no seeders
    (_release(OTHER_BOOK), "title words missing"),
    (_release(BEST, size=MiB), "too small"),
    (_release(BEST), None),
])
def test_rank_all_says_why_a_release_would_not_be_picked(release, rejected):
    [ranked] = rank_all([release], Blocklist.of([(BLOCKED, None)]), TITLE, AUTHOR)
    assert (ranked.rejected or "").startswith(rejected or "") and bool(ranked.rejected) == bool(rejected)
    assert ranked.score == rank_release(release, TITLE, AUTHOR).score


def test_the_automatic_search_drops_seedless_and_blocklisted_before_ranking():
    found = automatic_search([_release(BEST), _release(BLOCKED), _release(UNSEEDED, seeders=0)],
                             Blocklist.of([(BLOCKED, None)]), TITLE, AUTHOR)
    assert (found.seeded, found.blocked) == (2, 1)
    assert [r.release.title for r in found.ranked] == [BEST] and [r.release.title for r in found.usable] == [BEST]


@pytest.mark.parametrize("release,key", [
    (Release(title="t", size=1, seeders=1, guid="guid-1", download_url="http://d"), "guid-1"),
    (Release(title="t", size=1, seeders=1, download_url="http://d"), "http://d"),
    (Release(title="t", size=1, seeders=1, magnet_url="magnet:?xt=1"), "magnet:?xt=1"),
    (Release(title="t", size=1, seeders=1), "t"),
])
def test_a_release_is_named_by_its_guid_else_its_link(release, key):
    assert release_key(release) == key


def test_a_request_deleted_while_its_torrent_is_added_gets_the_torrent_taken_back(client, configured, fake_client,
                                                                                 redis_conn, bearer):
    """The delete runs after download_torrent's fence check and before its download row exists, so the delete
    finds nothing to remove: the run's record of the download is refused (fenced in its own statement), and the
    run takes the torrent back out itself."""
    from app.audiobook_requests import deletion

    configured.releases[1].torrent = make_torrent_bytes()
    request = _request()
    response = client.post(f"/api/requests/{request.id}/releases",
                           json={"guid": _guid(_search(client, request), BEST)}, headers=bearer)
    job_id = response.get_json()["jobId"]
    add = fake_client.add

    def add_then_delete(**kwargs):
        add(**kwargs)
        deletion.delete_request(str(request.id))  # an admin's DELETE lands in the window

    fake_client.add = add_then_delete
    drain(queue_names_for_group("download_torrent"), until=lambda: Job.get_by_id(job_id).status != "pending")
    assert Request.get_by_id(request.id).status == "deleted"
    assert fake_client.torrents == {}
    assert DownloadHistory.select().where(DownloadHistory.request == request.id).count() == 0  # never recorded
    assert Job.select().where((Job.type == "monitor_download") & (Job.request == request.id)).count() == 0

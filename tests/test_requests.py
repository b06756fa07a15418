"""Requests API and the request state machine; Prowlarr failures; the acquisition maintenance jobs."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.audiobook_requests.state import R, transition
from app.jobs.queues import queue_names_for_group
from app.models import Audiobook, DownloadHistory, Job, Request, utcnow

from fakes.prowlarr import FakeProwlarr, FakeRelease
from helpers import API_TOKEN, drain

BEARER = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def prowlarr(use_settings):
    fake = FakeProwlarr().start()
    use_settings(PROWLARR_URL=fake.url, PROWLARR_API_KEY=fake.api_key)
    yield fake
    fake.stop()


def _create(client, **body):
    return client.post("/api/requests", json={"title": "The Way of Kings", "author": "Brandon Sanderson", **body},
                       headers=BEARER)


def test_creating_a_request_queues_a_high_priority_search(client, redis_conn):
    response = _create(client, narrator="Michael Kramer", asin="B003P2WO5E")
    assert response.status_code == 201
    request = response.get_json()["request"]
    assert request["status"] == "pending"
    job = Job.get(Job.request == request["id"])
    assert job.type == "search_indexers" and job.priority == 10 and job.status == "pending"
    assert job.payload["audiobook"]["title"] == "The Way of Kings"
    shown = client.get(f"/api/requests/{request['id']}", headers=BEARER).get_json()["request"]
    assert shown["jobs"] == [{"id": str(job.id), "type": "search_indexers", "status": "pending",
                              "createdAt": shown["jobs"][0]["createdAt"]}]
    assert shown["progress"] == 0 and shown["errorMessage"] is None


def test_an_active_request_for_the_same_book_is_a_conflict(client, redis_conn):
    assert _create(client).status_code == 201
    again = _create(client, title="the way of  KINGS")
    assert again.status_code == 409 and "already has a request" in again.get_json()["error"]
    Request.update(status="cancelled").execute()
    assert _create(client).status_code == 201  # a cancelled one does not block


@pytest.mark.parametrize("body,field", [
    ({"author": "x"}, "title is required"), ({"title": "x"}, "author is required"),
    ({"title": 5, "author": "x"}, "title must be a non-empty string"), ({"title": " ", "author": "x"}, "title"),
    ({"title": "x" * 501, "author": "x"}, "title is longer than 500"),
    ({"title": "x", "author": "y", "asin": "B00/../x"}, "asin must be letters and digits"),
])
def test_bad_bodies_name_the_field(client, body, field):
    response = client.post("/api/requests", json=body, headers=BEARER)
    assert response.status_code == 400 and field in response.get_json()["error"]
    assert Request.select().count() == 0 and Job.select().count() == 0


def test_the_requests_api_needs_an_admin(client):
    assert client.post("/api/requests", json={"title": "x", "author": "y"}).status_code == 401
    assert client.get("/api/requests/00000000-0000-0000-0000-000000000000").status_code == 401
    assert client.get("/api/requests/nope", headers=BEARER).status_code == 404


def test_transitions_are_conditional(settings):
    book = Audiobook.create(title="t", author="a")
    request = Request.create(audiobook=book, status="cancelled")
    assert not transition(request.id, R.SEARCHING)
    assert not transition(request.id, R.DOWNLOADING)
    assert Request.get_by_id(request.id).status == "cancelled"
    request = Request.create(audiobook=book, status="downloading")
    assert not transition(request.id, R.SEARCHING)  # a slow search never overwrites a later status
    assert not transition(request.id, R.PENDING)
    assert transition(request.id, R.AWAITING_SEARCH) and Request.get_by_id(request.id).status == "awaiting_search"
    with pytest.raises(ValueError):
        transition(request.id, R.AVAILABLE, only_from=(R.PENDING,))


def test_nothing_usable_leaves_the_request_awaiting_search(client, prowlarr, redis_conn):
    prowlarr.releases = [FakeRelease("Someone - Other Book [M4B]", 700 * 2**20)]
    request_id = _create(client).get_json()["request"]["id"]
    drain(queue_names_for_group("search_indexers"))
    request = Request.get_by_id(request_id)
    assert request.status == "awaiting_search" and "Will retry automatically" in request.error_message
    assert request.search_attempts == 1 and request.last_search_at is not None


def test_a_bad_prowlarr_key_fails_at_once_naming_the_setting(client, prowlarr, redis_conn, use_settings):
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY="wrong-key-000")
    request_id = _create(client).get_json()["request"]["id"]
    drain(queue_names_for_group("search_indexers"))
    job = Job.get((Job.request == request_id) & (Job.type == "search_indexers"))
    assert job.status == "failed" and job.attempts == 1
    request = Request.get_by_id(request_id)
    assert request.status == "failed" and "PROWLARR_API_KEY" in request.error_message and "401" in request.error_message
    assert "wrong-key-000" not in (job.error_message or "") + (job.stack_trace or "")


@pytest.mark.slow
def test_prowlarr_errors_are_retried_and_fail_the_request_only_at_the_end(client, prowlarr, redis_conn):
    prowlarr.search_status = 500
    request_id = _create(client).get_json()["request"]["id"]
    seen = []

    def finished():
        job = Job.get((Job.request == request_id) & (Job.type == "search_indexers"))
        seen.append((job.status, job.attempts, Request.get_by_id(request_id).status))
        return job.status == "failed"

    drain(queue_names_for_group("search_indexers"), until=finished, timeout=30)
    assert ("delayed", 1, "searching") in seen and ("delayed", 2, "searching") in seen
    assert all(r != "failed" for status, attempts, r in seen if attempts < 3)
    assert Request.get_by_id(request_id).status == "failed" and len(prowlarr.searches) == 3


def test_retry_and_cancel(client, prowlarr, fake_client, redis_conn):
    prowlarr.releases = []
    request_id = _create(client).get_json()["request"]["id"]
    drain(queue_names_for_group("search_indexers"))
    assert Request.get_by_id(request_id).status == "awaiting_search"
    retried = client.post(f"/api/requests/{request_id}/retry", headers=BEARER)
    assert retried.status_code == 200 and Request.get_by_id(request_id).status == "pending"
    assert Job.get_by_id(retried.get_json()["jobId"]).type == "search_indexers"
    assert client.post(f"/api/requests/{request_id}/retry", headers=BEARER).status_code == 409  # nothing to retry

    # a download being monitored: cancel stops the monitor and removes the unfinished torrent with its files
    Request.update(status="downloading").where(Request.id == request_id).execute()
    fake_client.put("ab" * 20)
    DownloadHistory.create(request=request_id, download_client="qbittorrent", download_client_id="ab" * 20,
                           download_status="downloading", selected=True)
    from app.jobs.service import add_job

    monitor = add_job("monitor_download", {"requestId": request_id, "downloadHistoryId": "x" * 8,
                                           "downloadClientId": "ab" * 20, "downloadClient": "qbittorrent"}, delay=60)
    cancelled = client.post(f"/api/requests/{request_id}/cancel", headers=BEARER)
    assert cancelled.status_code == 200
    assert monitor in cancelled.get_json()["cancelledJobs"] and Job.get_by_id(monitor).status == "cancelled"
    assert fake_client.calls[-1] == "remove:True" and "ab" * 20 not in fake_client.torrents
    assert Request.get_by_id(request_id).status == "cancelled"
    assert client.post(f"/api/requests/{request_id}/cancel", headers=BEARER).status_code == 409


def test_retry_missing_torrents_takes_the_least_recently_searched_first(settings, redis_conn):
    from app.jobs.service import add_job

    book = Audiobook.create(title="t", author="a")
    now = utcnow()
    never = Request.create(audiobook=book, status="awaiting_search")
    recent = Request.create(audiobook=book, status="awaiting_search", last_search_at=now)
    older = [Request.create(audiobook=book, status="awaiting_search", last_search_at=now - timedelta(days=i + 1))
             for i in range(55)]
    Request.create(audiobook=book, status="failed")
    job_id = add_job("retry_missing_torrents", {})
    drain(queue_names_for_group("maintenance"))
    assert Job.get_by_id(job_id).result == {"success": True, "queued": 50}
    searched = {str(j.request_id) for j in Job.select().where(Job.type == "search_indexers")}
    assert str(never.id) in searched and str(recent.id) not in searched
    assert {str(r.id) for r in older[-49:]} <= searched  # the oldest 49 after the never-searched one


def test_cleanup_seeded_torrents_removes_only_what_seeded_long_enough(settings, use_settings, fake_client, redis_conn):
    from app.jobs.service import add_job

    use_settings(INDEXER_SEEDING_MINUTES="FastTracker=60,KeepForever=0")
    book = Audiobook.create(title="t", author="a")
    cases = {"done": ("available", "FastTracker", 3601), "young": ("available", "FastTracker", 100),
             "forever": ("available", "KeepForever", 10**6), "not-yet-available": ("downloaded", "FastTracker", 10**6)}
    for name, (status, indexer, seeded) in cases.items():
        request = Request.create(audiobook=book, status=status)
        info_hash = name.ljust(40, "0")[:40]
        fake_client.put(info_hash, name=name, progress=1.0, seeding_seconds=seeded)
        DownloadHistory.create(request=request, indexer_name=indexer, torrent_name=name, download_client="qbittorrent",
                               download_client_id=info_hash, download_status="completed", selected=True,
                               completed_at=utcnow())
    job_id = add_job("cleanup_seeded_torrents", {})
    drain(queue_names_for_group("maintenance"))
    assert Job.get_by_id(job_id).result == {"success": True, "removed": 1, "kept": 2}
    assert set(t.name for t in fake_client.torrents.values()) == {"young", "forever", "not-yet-available"}
    assert "remove:True" in fake_client.calls
    assert DownloadHistory.get(DownloadHistory.torrent_name == "done").download_status == "removed"


def test_a_script_tag_in_a_torrent_title_is_stored_as_text_and_escaped(client, admin_client, prowlarr, fake_client,
                                                                       redis_conn, tmp_path):
    from app.integrations.torrentfile import make_torrent

    book = tmp_path / "book.m4b"
    book.write_bytes(b"x" * 1000)
    hostile = 'Brandon Sanderson - The Way of Kings <script>alert("x")</script> "><img src=x onerror=alert(1)> [M4B]'
    prowlarr.releases = [FakeRelease(hostile, 700 * 2**20, torrent=make_torrent(book))]
    request_id = _create(client).get_json()["request"]["id"]
    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))
    assert DownloadHistory.get(DownloadHistory.request == request_id).torrent_name == hostile  # stored verbatim
    job = Job.get((Job.request == request_id) & (Job.type == "download_torrent"))
    page = admin_client.get(f"/admin/jobs/{job.id}").get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(" in page  # the payload, escaped

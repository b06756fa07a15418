"""Requests API and the request state machine; Prowlarr failures; the acquisition maintenance jobs."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.audiobook_requests.state import RequestStatus, transition
from app.jobs.queues import queue_names_for_group
from app.models import Audiobook, DownloadHistory, Job, Request, utcnow

from builders import BEARER
from fakes.prowlarr import FakeProwlarr, FakeRelease
from helpers import drain


@pytest.fixture
def prowlarr(use_settings):
    fake = FakeProwlarr().start()
    use_settings(PROWLARR_URL=fake.url, PROWLARR_API_KEY=fake.api_key)
    yield fake
    fake.stop()


def _create(client, **body):
    return client.post("/api/requests", json={"title": "The Way of Kings", "author": "Brandon Sanderson", **body},
                       headers=BEARER)


def test_creating_a_request_queues_a_high_priority_search(client, redis_conn, bearer):
    response = _create(client, narrator="Michael Kramer", asin="B003P2WO5E")
    assert response.status_code == 201
    request = response.get_json()["request"]
    assert request["status"] == "pending"
    job = Job.get(Job.request == request["id"])
    assert job.type == "search_indexers" and job.priority == 10 and job.status == "pending"
    assert job.payload["audiobook"]["title"] == "The Way of Kings"
    shown = client.get(f"/api/requests/{request['id']}", headers=bearer).get_json()["request"]
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
def test_bad_bodies_name_the_field(client, body, field, bearer):
    response = client.post("/api/requests", json=body, headers=bearer)
    assert response.status_code == 400 and field in response.get_json()["error"]
    assert Request.select().count() == 0 and Job.select().count() == 0


def test_the_requests_api_needs_an_admin(client, bearer):
    assert client.post("/api/requests", json={"title": "x", "author": "y"}).status_code == 401
    assert client.get("/api/requests/00000000-0000-0000-0000-000000000000").status_code == 401
    assert client.get("/api/requests/nope", headers=bearer).status_code == 404


def test_transitions_are_conditional(settings):
    book = Audiobook.create(title="t", author="a")
    request = Request.create(audiobook=book, status="cancelled")
    assert not transition(request.id, RequestStatus.SEARCHING)
    assert not transition(request.id, RequestStatus.DOWNLOADING)
    assert Request.get_by_id(request.id).status == "cancelled"
    request = Request.create(audiobook=book, status="downloading")
    assert not transition(request.id, RequestStatus.SEARCHING)  # a slow search never overwrites a later status
    assert not transition(request.id, RequestStatus.PENDING)
    assert (
        transition(request.id, RequestStatus.AWAITING_SEARCH)
        and Request.get_by_id(request.id).status == "awaiting_search"
    )
    with pytest.raises(ValueError):
        transition(request.id, RequestStatus.AVAILABLE, only_from=(RequestStatus.PENDING,))


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


def test_retry_and_cancel(client, prowlarr, fake_client, redis_conn, bearer):
    prowlarr.releases = []
    request_id = _create(client).get_json()["request"]["id"]
    drain(queue_names_for_group("search_indexers"))
    assert Request.get_by_id(request_id).status == "awaiting_search"
    retried = client.post(f"/api/requests/{request_id}/retry", headers=bearer)
    assert retried.status_code == 200 and Request.get_by_id(request_id).status == "pending"
    assert Job.get_by_id(retried.get_json()["jobId"]).type == "search_indexers"
    assert client.post(f"/api/requests/{request_id}/retry", headers=bearer).status_code == 409  # nothing to retry

    # a download being monitored: cancel stops the monitor and removes the unfinished torrent with its files
    Request.update(status="downloading").where(Request.id == request_id).execute()
    fake_client.put("ab" * 20)
    DownloadHistory.create(request=request_id, download_client="qbittorrent", download_client_id="ab" * 20,
                           download_status="downloading", selected=True)
    from app.jobs.service import add_job

    monitor = add_job("monitor_download", {"requestId": request_id, "downloadHistoryId": "x" * 8,
                                           "downloadClientId": "ab" * 20, "downloadClient": "qbittorrent"}, delay=60)
    cancelled = client.post(f"/api/requests/{request_id}/cancel", headers=bearer)
    assert cancelled.status_code == 200
    assert monitor in cancelled.get_json()["cancelledJobs"] and Job.get_by_id(monitor).status == "cancelled"
    assert fake_client.calls[-1] == "remove:True" and "ab" * 20 not in fake_client.torrents
    assert Request.get_by_id(request_id).status == "cancelled"
    assert client.post(f"/api/requests/{request_id}/cancel", headers=bearer).status_code == 409


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
    assert Job.get_by_id(job_id).result == {"success": True, "queued": 50, "waiting": 0}  # none backs off
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


# --- one active request per book, even for creates at the same moment (migration 12) ---------------------

@pytest.mark.parametrize("first, second, same", [
    (("The Way of Kings", "Brandon Sanderson", None), ("the way of kings", "BRANDON  SANDERSON", None), True),
    (("Les Misérables", "Victor Hugo", None), ("Les Miserables", "Victor Hugo", None), True),
    (("The Way of Kings", "Brandon Sanderson", None), ("Words of Radiance", "Brandon Sanderson", None), False),
    (("The Way of Kings", "Brandon Sanderson", None), ("The Way of Kings", "Someone Else", None), False),
    (("The Way of Kings", "Brandon Sanderson", "B003P2WO5E"), ("Way of Kings (Unabridged)", "B. S.", "b003p2wo5e"),
     True),  # an ASIN is the book, whatever its title is spelled
    (("The Way of Kings", "Brandon Sanderson", "B003P2WO5E"), ("The Way of Kings", "Brandon Sanderson", "B0XXXXXXXX"),
     False),  # two editions
])
def test_the_book_key_is_the_identity_create_request_refuses_twice(first, second, same):
    from app.library.book_identity import book_key

    assert (book_key(*first) == book_key(*second)) is same
    assert len(book_key(*first)) == 64


def test_the_index_covers_exactly_the_active_statuses(settings):
    from app.audiobook_requests.state import ACTIVE
    from app.migrations import ACTIVE_BOOK_INDEX

    (definition,) = Request._meta.database.obj.execute_sql(
        "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (ACTIVE_BOOK_INDEX,)).fetchone()
    assert "UNIQUE" in definition and "(book_key)" in definition, definition
    # a change of ACTIVE needs a migration that rebuilds the index
    assert set(re.findall(r"'(\w+)'::", definition)) == {status.value for status in ACTIVE}, definition


@pytest.mark.parametrize("body", [{}, {"asin": "B003P2WO5E"}], ids=["by title", "by asin"])
def test_two_creates_of_one_book_at_the_same_moment_over_http_give_one_request_and_a_409(
        live_url, redis_conn, monkeypatch, body, bearer):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from app.audiobook_requests import service

    # Hold both creates between the duplicate check and the insert (the library lookup runs there), so that
    # each has seen no active request before either inserts: the race, made certain.
    both_checked = threading.Barrier(2, timeout=20)
    looked_up = service.library_match

    def library_match_after_both_checked(fields):
        both_checked.wait()
        return looked_up(fields)

    monkeypatch.setattr(service, "library_match", library_match_after_both_checked)
    payload = {"title": "The Way of Kings", "author": "Brandon Sanderson", **body}

    def create(_):
        return requests.post(f"{live_url}/api/requests", json=payload, headers=bearer, timeout=30)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(create, range(2)))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    created = next(a for a in answers if a.status_code == 201).json()["request"]["id"]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused == {"success": False,
                       "error": f"'The Way of Kings' already has a request ({created}) in status pending"}
    assert Request.select().count() == 1 and Audiobook.select().count() == 1  # the refused one left nothing
    assert Job.select().where(Job.type == "search_indexers").count() == 1


def test_a_failed_request_is_not_retried_into_a_second_active_one(client, redis_conn, bearer):
    old = _create(client).get_json()["request"]["id"]
    assert transition(old, RequestStatus.FAILED, error_message="no release")
    new = _create(client).get_json()["request"]["id"]  # a failed request does not block a new one
    refused = client.post(f"/api/requests/{old}/retry", headers=bearer)
    assert refused.status_code == 409 and refused.get_json()["error"] == (
        f"not retried: 'The Way of Kings' has another active request ({new}) in status pending")
    assert Request.get_by_id(old).status == "failed"
    # and a worker's transition that would do the same is refused like any other, not a crash
    from app.db import database

    with database.obj.atomic():  # inside a caller's transaction, which goes on
        assert transition(old, RequestStatus.AVAILABLE, only_from=(RequestStatus.FAILED,)) is False
        assert Request.get_by_id(old).status == "failed"
    assert client.post(f"/api/requests/{new}/cancel", headers=bearer).status_code == 200
    assert client.post(f"/api/requests/{old}/retry", headers=bearer).status_code == 200


def test_migration_12_keys_existing_requests_and_leaves_repeated_active_ones_outside_the_index(settings):
    from app.library.book_identity import book_key
    from app.migrations import MIGRATIONS

    older = Request.create(audiobook=Audiobook.create(title="Dune", author="Frank Herbert"), status="downloading",
                           created_at=utcnow() - timedelta(hours=2))
    repeated = Request.create(audiobook=Audiobook.create(title="DUNE", author="Frank Herbert"), status="pending",
                              created_at=utcnow() - timedelta(hours=1))
    failed = Request.create(audiobook=Audiobook.create(title="Dune", author="Frank Herbert"), status="failed")
    version, _, migration = next(m for m in MIGRATIONS if m[0] == 12)
    migration(Request._meta.database.obj)  # again on a migrated database: safe, and keys what has none
    key = book_key("Dune", "Frank Herbert", None)
    assert [Request.get_by_id(r.id).book_key for r in (older, repeated, failed)] == [key, None, key]

"""The New request form on /admin/requests, and deleting a request (soft delete).

Through HTTP (Flask test client) against real PostgreSQL and Redis; the torrent removal on delete against the
REAL qbittorrent-nox (files must stay on disk); a download-client outage with the in-memory fake.
"""
from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest

from app.audiobook_requests.state import TRANSITIONS, RequestStatus, allowed, transition
from app.integrations.torrent import download_client
from app.integrations.torrentfile import make_torrent, read_torrent
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.models import Audiobook, DownloadHistory, Job, JobEvent, PlexLibrary, Request, utcnow
from app.pipeline.monitor_policy import TorrentUser, still_needs_torrent

from helpers import wait_for

HOSTILE = '<script>window.__pwned = 1</script>'


def _csrf(admin_client) -> str:
    page = admin_client.get("/admin/requests").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _post_form(admin_client, **fields):
    return admin_client.post("/admin/requests", data={"csrf_token": _csrf(admin_client), **fields})


def _field_error(page: str, name: str) -> str | None:
    found = re.search(rf'<span class="field-error" id="error-{name}" data-field="{name}">([^<]*)</span>', page)
    return found.group(1) if found else None


# --- the form -------------------------------------------------------------------------------------------

def test_the_form_has_the_four_inputs_and_needs_csrf(admin_client, redis_conn):
    page = admin_client.get("/admin/requests").get_data(as_text=True)
    form = page[page.index('id="new-request"'):page.index("</form>", page.index('id="new-request"'))]
    assert [re.search(rf'<input name="{n}"', form) is not None for n in ("title", "author", "narrator", "asin")] == \
        [True] * 4
    refused = admin_client.post("/admin/requests", data={"title": "Elantris", "author": "Brandon Sanderson"})
    assert refused.status_code == 400 and Request.select().count() == 0


def test_bad_fields_get_their_messages_next_to_them_and_nothing_is_created(admin_client, redis_conn, bearer):
    response = _post_form(admin_client, title="  ", author="Brandon Sanderson", narrator="", asin="B00/../x")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert _field_error(page, "title") == "title is required"
    assert _field_error(page, "asin") == "asin must be letters and digits only"  # the API's own messages
    assert _field_error(page, "author") is None and _field_error(page, "narrator") is None
    assert 'name="author" value="Brandon Sanderson"' in page and 'name="asin" value="B00/../x"' in page  # kept
    assert Request.select().count() == 0 and Job.select().count() == 0
    api = admin_client.post("/api/requests", json={"title": "x", "author": "y", "asin": "B00/../x"}, headers=bearer)
    assert api.status_code == 400 and api.get_json()["field"] == "asin"


def test_a_created_request_is_the_top_row_with_its_search_queued(admin_client, redis_conn):
    older = Request.create(audiobook=Audiobook.create(title="Older Book", author="Someone"),
                           created_at=utcnow() - timedelta(hours=1))
    response = _post_form(admin_client, title=f"Elantris {HOSTILE}", author="Brandon Sanderson",
                          narrator="Jack Garrett", asin="B002UZJGYY")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/requests")
    created = Request.get(Request.id != older.id)
    assert created.status == "pending" and created.audiobook.narrator == "Jack Garrett"
    assert created.audiobook.audible_asin == "B002UZJGYY"
    search = Job.get(Job.request == created.id)
    assert search.type == "search_indexers" and search.priority == 10
    page = admin_client.get("/admin/requests").get_data(as_text=True)
    assert re.findall(r'<tr data-request="([^"]+)"', page) == [str(created.id), str(older.id)]
    assert HOSTILE not in page and "&lt;script&gt;" in page


def test_a_book_already_in_the_library_shows_the_api_message_above_the_form(admin_client, redis_conn):
    PlexLibrary.create(plex_guid="plex://book/1", title="The Way of Kings", author="Brandon Sanderson",
                       asin="B003P2WO5E")
    response = _post_form(admin_client, title="Whatever Title", author="Someone", asin="B003P2WO5E")
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert re.search(r'class="field-error form-error" role="alert">already available in the library: The Way of '
                     r'Kings<', page)
    assert Request.select().count() == 0
    assert _post_form(admin_client, title="Elantris", author="Brandon Sanderson").status_code == 302
    again = _post_form(admin_client, title="elantris", author="Brandon Sanderson")
    assert again.status_code == 409 and "already has a request" in again.get_data(as_text=True)


# --- deleting -----------------------------------------------------------------------------------------

def test_delete_cancels_jobs_keeps_a_finished_torrent_seeding_and_keeps_the_row(client, qbittorrent, use_settings,
                                                                                 redis_conn, bearer):
    """The torrent's data is all there (it finished, the monitor had not seen it yet): it keeps seeding for its
    tracker (tests/audiobook_requests/test_seed_then_clean.py follows it to the cleanup)."""
    use_settings(DOWNLOAD_CLIENT="qbittorrent", DOWNLOAD_CLIENT_URL=qbittorrent.url,
                 DOWNLOAD_CLIENT_USERNAME=qbittorrent.username, DOWNLOAD_CLIENT_PASSWORD=qbittorrent.password,
                 DOWNLOAD_DIR=str(qbittorrent.download_dir))
    folder = qbittorrent.download_dir / f"Warbreaker {os.urandom(3).hex()}"
    folder.mkdir()
    (folder / "Warbreaker.m4b").write_bytes(os.urandom(200_000))
    torrent = make_torrent(folder)
    info_hash = read_torrent(torrent).info_hash
    download_client().add(torrent=torrent, category="readmeabook", tags=["test"],
                          save_path=str(qbittorrent.download_dir))
    wait_for(lambda: getattr(download_client().get(info_hash), "progress", 0) >= 1, 20, message="torrent verified")

    request_id = client.post("/api/requests", json={"title": "Warbreaker", "author": "Brandon Sanderson"},
                             headers=bearer).get_json()["request"]["id"]
    search = Job.get(Job.request == request_id)
    Request.update(status="downloading").where(Request.id == request_id).execute()
    history = DownloadHistory.create(request=request_id, download_client="qbittorrent", download_client_id=info_hash,
                                     torrent_hash=info_hash, torrent_name=folder.name, download_status="downloading",
                                     selected=True)
    monitor = add_job("monitor_download", {"requestId": request_id, "downloadHistoryId": str(history.id),
                                           "downloadClientId": info_hash, "downloadClient": "qbittorrent"}, delay=60)

    response = client.delete(f"/api/requests/{request_id}", headers=bearer)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["request"] == {"id": request_id, "status": "deleted"} and body["alreadyDeleted"] is False
    assert set(body["cancelledJobs"]) == {str(search.id), monitor} and body["seedingTorrents"] == [info_hash]
    assert body["removedTorrents"] == []
    assert Job.get_by_id(monitor).status == "cancelled" and Job.get_by_id(search.id).status == "cancelled"
    assert download_client().get(info_hash) is not None                              # still seeding
    assert (folder / "Warbreaker.m4b").stat().st_size == 200_000                     # files kept
    assert DownloadHistory.get_by_id(history.id).download_status == "seeding"
    shown = client.get(f"/api/requests/{request_id}", headers=bearer).get_json()["request"]
    assert shown["status"] == "deleted" and len(shown["jobs"]) == 2                  # row and timeline kept
    events = [e.message for e in JobEvent.select().where(JobEvent.job == monitor)]
    assert any(m.startswith("Request deleted by an admin (was downloading)") for m in events)

    again = client.delete(f"/api/requests/{request_id}", headers=bearer)             # idempotent
    assert again.status_code == 200 and again.get_json()["alreadyDeleted"] is True
    assert again.get_json()["cancelledJobs"] == [] and again.get_json()["removedTorrents"] == []
    assert again.get_json()["seedingTorrents"] == []                                 # let go of once
    assert client.post(f"/api/requests/{request_id}/retry", headers=bearer).status_code == 409
    assert client.post(f"/api/requests/{request_id}/cancel", headers=bearer).status_code == 409


def test_a_client_outage_never_loses_the_delete_and_a_second_delete_retries(client, fake_client, redis_conn, bearer):
    book = Audiobook.create(title="Mistborn", author="Brandon Sanderson")
    request = Request.create(audiobook=book, status="available")
    job = Job.create(type="organize_files", status="completed", request=request)
    fake_client.put("cd" * 20)
    DownloadHistory.create(request=request, download_client="qbittorrent", download_client_id="cd" * 20,
                           torrent_name="Mistborn [M4B]", download_status="completed", selected=True)
    fake_client.down = True
    response = client.delete(f"/api/requests/{request.id}", headers=bearer)
    assert response.status_code == 200
    assert Request.get_by_id(request.id).status == "deleted"
    assert response.get_json()["removedTorrents"] == [] and "could not be removed" in response.get_json()["warnings"][0]
    warns = [e.message for e in JobEvent.select().where((JobEvent.job == job.id) & (JobEvent.level == "warn"))]
    assert len(warns) == 1 and "The torrent " + "cd" * 20 in warns[0] and "could not be removed" in warns[0]

    fake_client.down = False
    again = client.delete(f"/api/requests/{request.id}", headers=bearer)
    assert again.get_json()["alreadyDeleted"] is True and again.get_json()["seedingTorrents"] == ["cd" * 20]
    assert "cd" * 20 in fake_client.torrents and fake_client.calls[-1] == "get"  # finished: left seeding
    assert DownloadHistory.get(DownloadHistory.request == request.id).download_status == "seeding"


def test_a_torrent_another_request_still_uses_stays_in_the_client(client, fake_client, redis_conn, bearer):
    mine = Request.create(audiobook=Audiobook.create(title="A", author="B"), status="failed")
    other = Request.create(audiobook=Audiobook.create(title="C", author="D"), status="downloading")
    fake_client.put("ef" * 20)
    for request in (mine, other):
        DownloadHistory.create(request=request, download_client="qbittorrent", download_client_id="ef" * 20,
                               torrent_hash="ef" * 20, download_status="downloading", selected=True)
    body = client.delete(f"/api/requests/{mine.id}", headers=bearer).get_json()
    assert body["keptTorrents"] == ["ef" * 20] and "ef" * 20 in fake_client.torrents
    assert Request.get_by_id(mine.id).status == "deleted"


@pytest.mark.parametrize("status", [s.value for s in RequestStatus])
def test_any_request_in_any_status_may_be_deleted(client, redis_conn, status, bearer):
    request = Request.create(audiobook=Audiobook.create(title="T", author="A"), status=status)
    assert client.delete(f"/api/requests/{request.id}", headers=bearer).status_code == 200
    assert Request.get_by_id(request.id).status == "deleted"


def test_delete_needs_an_admin_and_a_known_request(client, admin_client, redis_conn, bearer):
    request = Request.create(audiobook=Audiobook.create(title="T", author="A"))
    assert client.delete(f"/api/requests/{request.id}").status_code == 401
    assert admin_client.delete(f"/api/requests/{request.id}").status_code == 400   # a session needs CSRF
    assert client.delete("/api/requests/nope", headers=bearer).status_code == 404
    assert Request.get_by_id(request.id).status == "pending"


def test_nothing_leaves_deleted(settings):
    """The transition table: no status is entered from `deleted`, so no job, retry or matcher revives it."""
    request = Request.create(audiobook=Audiobook.create(title="T", author="A"), status="deleted")
    for target in RequestStatus:
        assert not allowed("deleted", target) or target is RequestStatus.DELETED
        if target is not RequestStatus.DELETED:
            assert transition(request.id, target) is False
    assert set(TRANSITIONS[RequestStatus.DELETED]) == set(RequestStatus) - {RequestStatus.DELETED}
    assert Request.get_by_id(request.id).status == "deleted"


def test_the_reconciler_and_the_plex_matcher_leave_deleted_requests_alone(settings, redis_conn):
    from app.audiobook_requests.reconciler import reconcile_requests
    from workers.processors.scan_plex import match_downloaded

    book = Audiobook.create(title="The Way of Kings", author="Brandon Sanderson", audible_asin="B003P2WO5E")
    request = Request.create(audiobook=book, status="deleted", updated_at=utcnow() - timedelta(hours=1))
    Job.create(type="search_indexers", status="cancelled", request=request)
    PlexLibrary.create(plex_guid="plex://book/asin", title="The Way of Kings", author="Brandon Sanderson",
                       asin="B003P2WO5E")
    assert reconcile_requests() == []
    assert match_downloaded(create_job_logger(None, "Test")) == []
    assert Request.get_by_id(request.id).status == "deleted"


@pytest.mark.parametrize("request_status,needed", [("deleted", False), ("cancelled", False), ("failed", False),
                                                   ("downloading", True), ("available", True)])
def test_seeding_cleanup_treats_a_deleted_request_as_done_with_its_torrent(request_status, needed):
    user = TorrentUser(request_id="r", request_status=request_status, download_status="completed", seeding_minutes=0)
    assert still_needs_torrent(user, seeding_seconds=10) is needed


# --- the page: hidden by default, a filter shows them, a Delete button ----------------------------------

def test_deleted_requests_are_hidden_unless_the_filter_asks(admin_client, fake_client, redis_conn):
    kept = Request.create(audiobook=Audiobook.create(title="Kept Book", author="A"), status="failed")
    gone = Request.create(audiobook=Audiobook.create(title="Gone Book", author="A"), status="failed")
    token = _csrf(admin_client)
    response = admin_client.post(f"/admin/requests/{gone.id}/delete", data={"csrf_token": token})
    assert response.status_code == 302 and Request.get_by_id(gone.id).status == "deleted"

    def rows(query: str = "") -> list[str]:
        page = admin_client.get(f"/admin/requests{query}").get_data(as_text=True)
        return re.findall(r'<tr data-request="([^"]+)"', page)

    assert rows() == [str(kept.id)]
    assert rows("?status=deleted") == [str(gone.id)]
    assert set(rows("?status=all")) == {str(kept.id), str(gone.id)}
    assert rows("?status=nonsense") == [str(kept.id)]
    assert rows("?status=deleted&partial=1") == [str(gone.id)]
    page = admin_client.get("/admin/requests?status=deleted").get_data(as_text=True)
    assert "status=deleted" in page[page.index('id="request-rows"'):][:200]   # the live refresh keeps the filter
    assert "delete-request" not in page                                      # nothing to delete twice

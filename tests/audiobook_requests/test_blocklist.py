"""The blocklist is visible. GET /api/blocklist (newest first, paginated like the logs API),
DELETE /api/blocklist/<id> (an event on the request's timeline), and /admin/blocklist with a Remove button
(a POST form with CSRF); anonymous users are refused. Through HTTP on real PostgreSQL and Redis; the page
also in chromium (Playwright)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.audiobook_requests.blocklist import block_release, blocklist_for
from app.models import Audiobook, BlockedRelease, Job, JobEvent, Request, utcnow
from app.pipeline.ranking import Release

from helpers import HOSTILE, csrf_token, login, screenshot


def _request(title: str = "The Way of Kings", status: str = "awaiting_search") -> Request:
    request = Request.create(audiobook=Audiobook.create(title=title, author="Brandon Sanderson"), status=status)
    Job.create(type="search_indexers", status="completed", request=request, created_at=utcnow() - timedelta(hours=1))
    return request


def _block(request: Request, title: str, *, info_hash: str | None = None, indexer: str | None = "MyAudioTracker",
           reason: str = "no progress for 21600 s", age: timedelta = timedelta(0)) -> BlockedRelease:
    assert block_release(request.id, title=title, info_hash=info_hash, indexer=indexer, reason=reason)
    BlockedRelease.update(created_at=utcnow() - age).where(
        (BlockedRelease.request == request.id) & (BlockedRelease.title == title)).execute()
    return BlockedRelease.get((BlockedRelease.request == request.id) & (BlockedRelease.title == title))


def test_the_list_shows_each_entry_with_its_request_newest_first(client, redis_conn, bearer):
    kings, elantris = _request(), _request("Elantris", "downloading")
    old = _block(kings, "Brandon Sanderson - The Way of Kings [MP3]", age=timedelta(days=2))
    new = _block(elantris, "Brandon Sanderson - Elantris [M4B]", info_hash="ab" * 20, indexer=None,
                 reason="the client reports an error: No space left on device")
    answer = client.get("/api/blocklist", headers=bearer)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["pagination"] == {"page": 1, "perPage": 25, "hasNext": False, "hasPrevious": False}
    assert [e["id"] for e in body["entries"]] == [str(new.id), str(old.id)]
    assert body["entries"][0] == {
        "id": str(new.id), "title": "Brandon Sanderson - Elantris [M4B]", "infoHash": "ab" * 20, "indexer": None,
        "reason": "the client reports an error: No space left on device",
        "createdAt": new.created_at.isoformat() + "Z",
        "request": {"id": str(elantris.id), "status": "downloading", "bookTitle": "Elantris",
                    "bookAuthor": "Brandon Sanderson"}}
    assert body["entries"][1]["indexer"] == "MyAudioTracker" and body["entries"][1]["request"]["id"] == str(kings.id)


def test_the_list_is_paginated_like_the_logs_api(client, redis_conn, bearer):
    request = _request()
    titles = [f"Release {n:02d}" for n in range(30)]
    for n, title in enumerate(titles):
        _block(request, title, age=timedelta(minutes=n))          # Release 00 is the newest
    first = client.get("/api/blocklist?per_page=25", headers=bearer).get_json()
    second = client.get("/api/blocklist?per_page=25&page=2", headers=bearer).get_json()
    assert [e["title"] for e in first["entries"]] == titles[:25]
    assert first["pagination"] == {"page": 1, "perPage": 25, "hasNext": True, "hasPrevious": False}
    assert [e["title"] for e in second["entries"]] == titles[25:]
    assert second["pagination"] == {"page": 2, "perPage": 25, "hasNext": False, "hasPrevious": True}
    for bad, message in (("per_page=7", "per_page must be one of 25, 50, 100"), ("page=0", "page must be"),
                         ("page=x", "must be numbers")):
        refused = client.get(f"/api/blocklist?{bad}", headers=bearer)
        assert refused.status_code == 400 and message in refused.get_json()["error"]


def test_delete_removes_the_entry_says_so_on_the_timeline_and_searches_may_pick_it_again(client, redis_conn, bearer):
    request = _request()
    title = "Brandon Sanderson - The Way of Kings (Unabridged) [M4B]"
    entry = _block(request, title, info_hash="cd" * 20)
    kept = _block(request, "Brandon Sanderson - The Way of Kings [MP3]")
    newest = Job.create(type="monitor_download", status="completed", request=request)
    release = Release(title=title, size=700 * 2**20, seeders=5, indexer="MyAudioTracker")
    assert blocklist_for(request.id).blocks(release)

    removed = client.delete(f"/api/blocklist/{entry.id}", headers=bearer)
    assert removed.status_code == 200
    assert removed.get_json() == {"success": True, "removed": {"id": str(entry.id), "title": title,
                                                                "requestId": str(request.id)}}
    assert not blocklist_for(request.id).blocks(release)                   # the next search may take it
    assert [e.id for e in BlockedRelease.select()] == [kept.id]
    event = JobEvent.get(JobEvent.job == newest.id)                        # the request's timeline: its newest job
    assert event.context == "Blocklist" and event.level == "info"
    assert event.message == (f"An admin removed {title!r} from the blocklist (blocked for: no progress for 21600 s);"
                             f" later searches may pick it again")
    assert event.metadata["infoHash"] == "cd" * 20 and event.metadata["removedBy"] == "admin"

    again = client.delete(f"/api/blocklist/{entry.id}", headers=bearer)
    assert again.status_code == 404 and again.get_json() == {"success": False, "error": "blocklist entry not found"}
    for bad in ("nope", "00000000-0000-0000-0000-000000000000", "1"):
        assert client.delete(f"/api/blocklist/{bad}", headers=bearer).status_code == 404
    assert BlockedRelease.select().count() == 1


def test_anonymous_users_are_refused_everywhere(client, redis_conn):
    entry = _block(_request(), "Brandon Sanderson - The Way of Kings [MP3]")
    assert client.get("/api/blocklist").status_code == 401
    assert client.delete(f"/api/blocklist/{entry.id}").status_code == 401
    page = client.get("/admin/blocklist")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert client.post(f"/admin/blocklist/{entry.id}/remove").status_code in (302, 400, 401)
    assert BlockedRelease.select().count() == 1


def test_the_page_lists_entries_escaped_and_remove_needs_csrf(admin_client, redis_conn):
    request = _request(f"Book {HOSTILE}")
    entry = _block(request, f"Release {HOSTILE}", reason=f"stalled {HOSTILE}", info_hash="ef" * 20)
    page = admin_client.get("/admin/blocklist").get_data(as_text=True)
    assert 'href="/admin/blocklist"' in page                               # in the nav
    assert HOSTILE not in page and "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "ef" * 20 in page and "MyAudioTracker" in page and str(request.id) in page

    assert admin_client.post(f"/admin/blocklist/{entry.id}/remove").status_code == 400   # no CSRF token
    assert BlockedRelease.select().count() == 1
    done = admin_client.post(f"/admin/blocklist/{entry.id}/remove", data={"csrf_token": csrf_token(admin_client)},
                             follow_redirects=True)
    assert done.status_code == 200 and "from the blocklist: later searches may pick it again" in done.get_data(
        as_text=True)
    assert BlockedRelease.select().count() == 0
    gone = admin_client.post(f"/admin/blocklist/{entry.id}/remove", data={"csrf_token": csrf_token(admin_client)})
    assert gone.status_code == 404
    flashed = admin_client.get("/admin/blocklist?per_page=3", follow_redirects=True).get_data(as_text=True)
    assert "per_page must be one of 25, 50, 100" in flashed


@pytest.mark.slow
def test_an_admin_removes_an_entry_in_the_browser(page, live_url, redis_conn):
    request = _request(f"Mistborn {HOSTILE}")
    _block(request, f"Brandon Sanderson - Mistborn {HOSTILE} [MP3]", reason="stalled")
    _block(request, "Brandon Sanderson - Mistborn [M4B]", reason="swapped by an admin", age=timedelta(hours=1))
    login(page, live_url)
    page.click("header >> text=Blocklist")
    page.wait_for_url(f"{live_url}/admin/blocklist")
    rows = page.locator("table.blocklist tbody tr[data-entry]")
    expect(rows).to_have_count(2)
    expect(rows.first.locator(".release-title")).to_have_text(f"Brandon Sanderson - Mistborn {HOSTILE} [MP3]")
    expect(rows.first.locator(".book-title")).to_have_text(f"Mistborn {HOSTILE}")
    screenshot(page, "blocklist")

    page.on("dialog", lambda dialog: dialog.accept())                      # Remove asks first
    rows.first.locator("button.remove-entry").click()
    page.wait_for_url(f"{live_url}/admin/blocklist")
    expect(page.locator(".flash")).to_contain_text("from the blocklist: later searches may pick it again")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".reason")).to_have_text("swapped by an admin")
    assert page.evaluate("window.__pwned === undefined")
    assert [e.title for e in BlockedRelease.select()] == ["Brandon Sanderson - Mistborn [M4B]"]

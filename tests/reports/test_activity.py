"""Activity. /admin/activity and GET /api/activity list every download in flight (book,
release, indexer, client state, progress, speed, ETA, seeders, age; "seeding until …" for a finished one) from
ONE download-client call per page load, and offer "Remove, blocklist and search again" and "Remove".

Through HTTP (Flask test client) on real PostgreSQL and Redis and the REAL qbittorrent-nox and
transmission-daemon (`daemon`: both); the client calls are counted at the HTTP layer of the thin clients."""
from __future__ import annotations

from datetime import datetime

import pytest

from app.integrations import qbittorrent as qbittorrent_module
from app.integrations import transmission as transmission_module
from app.integrations.torrent import download_client
from app.models import BlockedRelease, DownloadHistory, Job, Request
from app.pipeline.activity_rules import Actions, actions, duration_text, eta_seconds, finished
from app.pipeline.download_state import DownloadState

from builders import make_request
from helpers import HOSTILE, book_in_client, csrf_token

LIMITS = {"INDEXER_SEEDING_MINUTES": "Quick Tracker=60"}
REFUSED_FINISHED = ("the download finished: it seeds until its indexer's limit, then cleanup_seeded_torrents "
                    "removes it")


# --- the rules (pure) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("download_status,request_status,progress,expected", [
    ("downloading", "downloading", 0.5, Actions(True, True)),
    ("queued", "downloading", None, Actions(True, True)),
    ("paused", "downloading", 0.0, Actions(True, True)),
    ("downloading", "downloading", 1.0, Actions(False, False, REFUSED_FINISHED)),  # the client has every byte
    ("completed", "processing", 1.0, Actions(False, False, REFUSED_FINISHED)),     # the import reads it
    ("completed", "available", None, Actions(False, False, REFUSED_FINISHED)),
    ("seeding", "cancelled", 1.0, Actions(True, False)),                             # let go of: remove now
    ("downloading", "cancelled", 0.2, Actions(False, False, "its request is cancelled, not downloading")),
])
def test_which_actions_a_download_offers(download_status, request_status, progress, expected):
    done = finished(download_status in ("completed", "seeding"), progress)
    assert actions(kept_seeding=download_status == "seeding", finished_now=done,
                   request_status=request_status) == expected


@pytest.mark.parametrize("raw,done,eta", [
    (120, False, 120), (0, False, 0), (8_640_000, False, None), (-1, False, None), (-2, False, None),
    (None, False, None), (120, True, None)])
def test_the_eta_shown(raw, done, eta):
    assert eta_seconds(raw, done) == eta


@pytest.mark.parametrize("seconds,text", [
    (None, "–"), (-3, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"), (3600 + 5 * 60, "1 h 05 min"),
    (2 * 86400 + 4 * 3600 + 59, "2 d 4 h")])
def test_durations_read(seconds, text):
    assert duration_text(seconds) == text


# --- through HTTP, the real clients ------------------------------------------------------------------------

@pytest.fixture
def client_calls(monkeypatch):
    """Every HTTP request the qBittorrent and Transmission clients send, as (method, url)."""
    calls: list[tuple[str, str]] = []
    for module in (qbittorrent_module, transmission_module):
        real = module.request

        def counted(session, service, method, url, *args, real=real, **kwargs):
            calls.append((method, url))
            return real(session, service, method, url, *args, **kwargs)

        monkeypatch.setattr(module, "request", counted)
    return calls


def _row(request: Request, info_hash: str, kind: str, status: str, **more) -> DownloadHistory:
    return DownloadHistory.create(request=request, indexer_name="Quick Tracker",
                                  torrent_name=f"{request.audiobook.title} [M4B]", torrent_hash=info_hash,
                                  download_client=kind, download_client_id=info_hash,
                                  download_status=status, selected=True, seeders=7,
                                  started_at=datetime(2026, 12, 6, 6, 0), **more)


@pytest.fixture
def in_flight(daemon, daemon_settings, flask_app):
    """Four downloads in the real client: two unfinished of downloading requests, one finished whose request
    is available (still seeding for its tracker), one kept seeding after its request was cancelled."""
    flask_app.config["SETTINGS"] = daemon_settings(**LIMITS)
    client = download_client(daemon.kind)
    rows = {}
    for key, title, done, request_status, status in (
            ("unfinished", HOSTILE + " Elantris", False, "downloading", "downloading"),
            ("other", "Warbreaker", False, "downloading", "downloading"),
            ("available", "Mistborn", True, "available", "completed"),
            ("kept", "Skyward", True, "cancelled", "seeding")):
        folder, info_hash = book_in_client(client, daemon.download_dir, finished=done, name=title[-8:])
        completed = datetime(2026, 12, 6, 7, 0) if done else None
        request = make_request(request_status, title=title)
        rows[key] = (_row(request, info_hash, daemon.kind, status, completed_at=completed),
                     folder)
    return rows


def _by_book(reply) -> dict:
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return {d["book"]["title"]: d for d in reply.get_json()["downloads"]}


def test_activity_lists_every_download_from_one_client_call_per_page_load(in_flight, daemon, admin_client,
                                                                          client_calls, bearer):
    admin_client.get("/api/activity", headers=bearer)  # a first call may log in (qBittorrent) or fetch a session id
    for path in ("/api/activity", "/admin/activity", "/admin/activity?partial=1"):
        client_calls.clear()
        reply = admin_client.get(path, headers=bearer if path.startswith("/api") else {})
        assert reply.status_code == 200
        assert len(client_calls) == 1, (path, client_calls)  # four rows, one call
    rows = _by_book(admin_client.get("/api/activity", headers=bearer))
    assert len(rows) == 4
    unfinished = rows[HOSTILE + " Elantris"]
    assert unfinished["book"] == {"title": HOSTILE + " Elantris", "author": "Brandon Sanderson"}
    assert unfinished["indexer"] == "Quick Tracker" and unfinished["client"] == daemon.kind
    assert unfinished["state"] == DownloadState.DOWNLOADING.value and 0 < unfinished["progress"] < 1
    assert unfinished["downloadSpeed"] == 0 and unfinished["eta"] is None  # no peers: no speed, no ETA
    assert unfinished["seeders"] == 0 and unfinished["size"] > 0 and unfinished["ageSeconds"] > 0
    assert unfinished["finished"] is False and unfinished["seeding"] is None
    assert unfinished["actions"] == {"remove": True, "searchAgain": True, "refusal": None}
    available = rows["Mistborn"]
    assert available["progress"] == 1 and available["finished"] is True
    assert available["seeding"] == "seeding until 2026-12-06 08:00 UTC (Quick Tracker: 60 min)"
    assert available["actions"] == {"remove": False, "searchAgain": False, "refusal": REFUSED_FINISHED}
    assert rows["Skyward"]["actions"] == {"remove": True, "searchAgain": False, "refusal": None}
    page = admin_client.get("/admin/activity").get_data(as_text=True)
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert "seeding until 2026-12-06 08:00 UTC (Quick Tracker: 60 min)" in page
    assert 'data-refresh-url="/admin/activity?partial=1"' in page
    assert page.count('class="search-again"') == 2 and page.count('class="remove-download"') == 3
    assert '<a href="/admin/activity" class="here">Activity</a>' in page


def test_remove_blocklist_and_search_again(in_flight, daemon, admin_client, bearer):
    from app.jobs.service import add_job

    row, folder = in_flight["unfinished"]
    monitor = add_job("monitor_download", {"requestId": str(row.request_id), "downloadHistoryId": str(row.id),
                                           "downloadClientId": row.download_client_id,
                                           "downloadClient": daemon.kind})
    assert admin_client.post(f"/admin/activity/{row.id}/search-again").status_code == 400  # no CSRF token
    reply = admin_client.post(f"/admin/activity/{row.id}/search-again",
                              data={"csrf_token": csrf_token(admin_client, "/admin/activity")})
    assert reply.status_code == 302
    assert download_client(daemon.kind).get(row.download_client_id) is None
    assert not (folder / "01.m4b").exists()  # the partial files went with it
    assert DownloadHistory.get_by_id(row.id).download_status == "removed"
    request = Request.get_by_id(row.request_id)
    assert request.status == "awaiting_search" and "removed, blocklisted and searched again" in request.error_message
    blocked = BlockedRelease.get(BlockedRelease.request == row.request_id)
    assert blocked.info_hash == row.download_client_id and "removed by an admin from Activity" in blocked.reason
    assert Job.get_by_id(monitor).status == "cancelled"
    assert Job.select().where((Job.request == row.request_id) & (Job.type == "search_indexers")).count() == 1
    page = admin_client.get("/admin/activity").get_data(as_text=True)
    assert "Searching again (job" in page and str(row.id) not in page
    # the row is gone from Activity; asking again is a 404 (ended rows are not in flight, but exist: 409)
    again = admin_client.post(f"/api/activity/{row.id}/search-again", headers=bearer)
    assert again.status_code == 409 and "already ended" in again.get_json()["error"]


def test_remove_takes_the_partial_files_and_leaves_the_search_to_the_schedule(in_flight, daemon, admin_client,
                                                                            client, bearer):
    row, folder = in_flight["other"]
    assert client.post(f"/api/activity/{row.id}/remove").status_code == 401  # anonymous
    reply = admin_client.post(f"/api/activity/{row.id}/remove", headers=bearer)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.get_json()["removedTorrents"] == [row.download_client_id] and reply.get_json()["searchJobId"] is None
    assert download_client(daemon.kind).get(row.download_client_id) is None and not (folder / "01.m4b").exists()
    request = Request.get_by_id(row.request_id)
    assert request.status == "awaiting_search" and request.next_search_at is None
    assert BlockedRelease.select().count() == 0
    assert Job.select().where(Job.type == "search_indexers").count() == 0

    kept, kept_folder = in_flight["kept"]  # let go of by its request: removed now, with its files
    reply = admin_client.post(f"/api/activity/{kept.id}/remove", headers=bearer)
    assert reply.status_code == 200 and reply.get_json()["removedTorrents"] == [kept.download_client_id]
    assert download_client(daemon.kind).get(kept.download_client_id) is None and not kept_folder.exists()

    available, _ = in_flight["available"]  # owed its seeding: refused, left in the client
    for action in ("remove", "search-again"):
        reply = admin_client.post(f"/api/activity/{available.id}/{action}", headers=bearer)
        assert reply.status_code == 409 and reply.get_json()["error"] == REFUSED_FINISHED
    assert download_client(daemon.kind).get(available.download_client_id) is not None
    assert admin_client.post("/api/activity/not-a-uuid/remove", headers=bearer).status_code == 404
    assert admin_client.post(f"/api/activity/{available.id}/explode", headers=bearer).status_code == 404


def test_an_unreachable_client_leaves_the_rows_with_the_reason(admin_client, fake_client, bearer):
    request = make_request("downloading", title="Elantris")
    _row(request, "ab" * 20, "qbittorrent", "downloading")
    fake_client.down = True
    rows = admin_client.get("/api/activity", headers=bearer).get_json()["downloads"]
    assert [r["state"] for r in rows] == ["unreachable"] and "cannot connect" in rows[0]["clientError"]
    assert rows[0]["seeders"] == 7 and rows[0]["progress"] is None
    assert fake_client.calls == ["statuses"]
    fake_client.down = False
    fake_client.put("ab" * 20, progress=0.25)
    rows = admin_client.get("/api/activity", headers=bearer).get_json()["downloads"]
    assert rows[0]["state"] == "downloading" and rows[0]["progress"] == 0.25 and rows[0]["clientError"] is None


def test_activity_refuses_anonymous_users(client):
    assert client.get("/admin/activity").status_code == 302
    assert client.get("/api/activity").status_code == 401
    assert client.post("/admin/activity/x/remove").status_code == 400  # no CSRF token: refused before anything

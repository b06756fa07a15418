"""Seed, then clean. Deleting or cancelling a request whose torrent finished keeps the torrent
seeding until its indexer's limit (INDEXER_SEEDING_MINUTES and INDEXER_SEEDING_RATIO, both when both are set);
cleanup_seeded_torrents then removes it with its files. An unfinished download goes at once, with its partial
files. An admin can still remove a kept torrent now.

Through HTTP (Flask test client) against real PostgreSQL and Redis, and the REAL qbittorrent-nox and
transmission-daemon (`daemon`: every test here runs against both). Seeding time and ratio are the one thing a
test cannot produce (an hour of seeding, a peer to upload to): for the cleanup runs the real client is wrapped
to report more (helpers.SeededLonger); finding, removing and deleting files is the daemon's own.
"""
from __future__ import annotations

import math
import re
from datetime import datetime

import pytest

from app.config import SettingsError, load_settings
from app.integrations import qbittorrent, transmission
from app.integrations import torrent as torrent_module
from app.integrations.torrent import download_client
from app.models import Audiobook, DownloadHistory, Job, Request
from app.pipeline.download_state import DownloadState
from app.pipeline.seeding import LetGo, SeedingLimit, let_go, seeding_until

from builders import request_event_messages
from helpers import SeededLonger, book_in_client, run_cleanup, wait_for

HOUR = 3600
LIMITS = {"INDEXER_SEEDING_MINUTES": "Quick Tracker=60,Both Tracker=60",
          "INDEXER_SEEDING_RATIO": "Ratio Tracker=1.0,Both Tracker=2"}


# --- the rules (pure) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("minutes,ratio_limit,seeded,ratio,reached", [
    (60, 0, HOUR - 1, 5.0, False),     # time only: a high ratio does not end it early
    (60, 0, HOUR, 0.0, True),
    (0, 1.0, 10**7, 0.99, False),      # ratio only: time does not count
    (0, 1.0, 0, 1.0, True),
    (60, 2.0, HOUR, 1.0, False),       # both set: both must be met (the original's AND rule)
    (60, 2.0, HOUR - 1, 2.0, False),
    (60, 2.0, HOUR, 2.0, True),
    (0, 0, 10**7, 100.0, False),       # neither: seed forever
    (60, 0, HOUR, math.inf, True),     # Transmission's "infinite" ratio
])
def test_when_a_torrent_has_seeded_enough(minutes, ratio_limit, seeded, ratio, reached):
    assert SeedingLimit(minutes, ratio_limit).reached(seeded, ratio) is reached


@pytest.mark.parametrize("in_client,finished,shared,decision", [
    (True, True, False, LetGo.KEEP_SEEDING),       # finished: the tracker is owed its seeding
    (True, False, False, LetGo.REMOVE_WITH_FILES),  # unfinished: owes nothing, goes with its partial files
    (True, True, True, LetGo.SHARED),              # another request uses it: left alone
    (True, False, True, LetGo.SHARED),
    (False, True, False, LetGo.GONE),
])
def test_what_letting_go_of_a_torrent_does(in_client, finished, shared, decision):
    assert let_go(in_client, finished, shared) is decision


@pytest.mark.parametrize("limit,completed_at,text", [
    (SeedingLimit(90), datetime(2026, 12, 6, 7, 0), "seeding until 2026-12-06 08:30 UTC"),
    (SeedingLimit(0, 1.5), datetime(2026, 12, 6, 7, 0), "seeding until ratio 1.5"),
    (SeedingLimit(60, 2), datetime(2026, 12, 6, 23, 30), "seeding until 2026-12-07 00:30 UTC and ratio 2"),
    (SeedingLimit(60), None, "seeding until 60 min of seeding"),
    (SeedingLimit(), datetime(2026, 12, 6, 7, 0), "seeding (no limit set for its indexer)"),
])
def test_what_the_pages_say_about_a_kept_torrent(limit, completed_at, text):
    assert seeding_until(limit, completed_at) == text


def test_the_ratio_setting_has_the_minutes_format_and_bad_entries_stop_the_start():
    settings = load_settings({"INDEXER_SEEDING_MINUTES": "Tracker A=1440, tracker b=0",
                              "INDEXER_SEEDING_RATIO": "TRACKER A=1.5,Tracker C=2"}, env_file=None)
    assert settings.seeding_limit_for("tracker a") == SeedingLimit(1440, 1.5)
    assert settings.seeding_limit_for("Tracker C") == SeedingLimit(0, 2.0)
    assert settings.seeding_limit_for("Unlisted").forever and settings.seeding_limit_for(None).forever
    with pytest.raises(SettingsError) as refused:
        load_settings({"INDEXER_SEEDING_RATIO": "Tracker A=-1,Tracker B=lots,Tracker C", "INDEXER_SEEDING_MINUTES":
                       "Tracker A=1.5"}, env_file=None)
    message = str(refused.value)
    assert "INDEXER_SEEDING_RATIO='Tracker A=-1,Tracker B=lots,Tracker C': 'Tracker A': must be a number >= 0" \
        in message
    assert "INDEXER_SEEDING_MINUTES='Tracker A=1.5': 'Tracker A': '1.5' is not a number" in message


@pytest.mark.parametrize("reported,ratio", [(0.42, 0.42), (0, 0.0), (None, 0.0), (-1, 0.0)])
def test_qbittorrent_reports_the_ratio(reported, ratio):
    item = {"hash": "AB" * 20, "name": "book", "state": "stalledUP", "progress": 1, "ratio": reported}
    assert qbittorrent._status(item).ratio == ratio


@pytest.mark.parametrize("reported,ratio", [(0.5, 0.5), (-1, 0.0), (-2, math.inf), (None, 0.0)])
def test_transmission_reports_the_ratio_and_its_special_values(reported, ratio):
    item = {"hashString": "ab" * 20, "name": "book", "status": 6, "percentDone": 1, "uploadRatio": reported}
    assert transmission._status(item).ratio == ratio
    assert "uploadRatio" in transmission.FIELDS


# --- the page's Remove now and its refusals (in-memory client) --------------------------------------------

def test_remove_now_is_a_csrf_form_and_an_admin_only_route(admin_client, client, fake_client, use_settings):
    use_settings(**LIMITS)
    request = Request.create(audiobook=Audiobook.create(title="Warbreaker", author="Brandon Sanderson"),
                             status="cancelled")
    fake_client.put("cd" * 20, progress=1.0, state=DownloadState.COMPLETE, seeding_seconds=60)
    DownloadHistory.create(request=request, indexer_name="Quick Tracker", torrent_name="Warbreaker [M4B]",
                           torrent_hash="cd" * 20, download_client="qbittorrent", download_client_id="cd" * 20,
                           download_status="seeding", selected=True, completed_at=datetime(2026, 12, 6, 7, 0))
    page = admin_client.get("/admin/requests").get_data(as_text=True)
    assert "Torrent Warbreaker [M4B]: seeding until 2026-12-06 08:00 UTC (Quick Tracker: 60 min)" in page
    action = f"/admin/requests/{request.id}/remove-seeding"
    assert action in page
    assert client.post(f"/api/requests/{request.id}/remove-seeding").status_code == 401      # anonymous
    assert admin_client.post(action).status_code == 400                                        # no CSRF token
    assert "cd" * 20 in fake_client.torrents
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = admin_client.post(action, data={"csrf_token": token})
    assert response.status_code == 302 and "cd" * 20 not in fake_client.torrents
    assert fake_client.calls[-1] == "remove:True"
    assert "remove-seeding" not in admin_client.get("/admin/requests").get_data(as_text=True)


def test_a_kept_torrent_another_request_still_needs_is_not_removed_now(client, fake_client, use_settings, bearer):
    use_settings(**LIMITS)
    book = Audiobook.create(title="Warbreaker", author="Brandon Sanderson")
    mine, other = (Request.create(audiobook=book, status=s) for s in ("deleted", "awaiting_import"))
    fake_client.put("ef" * 20, progress=1.0, state=DownloadState.COMPLETE)
    for request, status in ((mine, "seeding"), (other, "completed")):
        DownloadHistory.create(request=request, indexer_name="Quick Tracker", torrent_hash="ef" * 20,
                               download_client="qbittorrent", download_client_id="ef" * 20, download_status=status,
                               selected=True)
    body = client.post(f"/api/requests/{mine.id}/remove-seeding", headers=bearer).get_json()
    assert body["keptTorrents"] == ["ef" * 20] and "ef" * 20 in fake_client.torrents


# --- against the real daemons ----------------------------------------------------------------------------

@pytest.fixture
def real(daemon, daemon_settings):
    daemon_settings(**LIMITS)
    return daemon


def _book(daemon, *, finished: bool) -> tuple:
    return book_in_client(download_client(), daemon.download_dir, finished=finished)


def _request(daemon, info_hash: str, indexer: str, *, status: str, download_status: str) -> Request:
    book = Audiobook.create(title="Elantris", author="Brandon Sanderson")
    request = Request.create(audiobook=book, status=status)
    Job.create(type="download_torrent", status="completed", request=request)  # its timeline
    DownloadHistory.create(request=request, indexer_name=indexer, torrent_name="Elantris [M4B]", torrent_hash=info_hash,
                           download_client=daemon.kind, download_client_id=info_hash, selected=True,
                           download_status=download_status)
    return request


def _cleanup_as_if_seeded(seconds: int, ratio: float = 0.0) -> tuple[dict, list[str]]:
    wrapped = SeededLonger(download_client(), seconds, ratio)
    torrent_module.set_client_factory(lambda kind: wrapped)
    try:
        return run_cleanup()
    finally:
        torrent_module.set_client_factory(None)


def test_a_deleted_request_keeps_its_finished_torrent_seeding_until_cleanup_removes_it_with_its_files(
        real, client, admin_client, bearer):
    folder, info_hash = _book(real, finished=True)
    request = _request(real, info_hash, "Quick Tracker", status="available", download_status="completed")

    body = client.delete(f"/api/requests/{request.id}", headers=bearer).get_json()
    assert download_client().get(info_hash) is not None and (folder / "01.m4b").exists()  # still seeding
    assert body["seedingTorrents"] == [info_hash] and body["removedTorrents"] == [] and body["warnings"] == []
    row = DownloadHistory.get(DownloadHistory.request == request.id)
    assert row.download_status == "seeding" and row.completed_at is not None
    shown = client.get(f"/api/requests/{request.id}", headers=bearer).get_json()["request"]
    [seeding] = shown["seedingTorrents"]
    assert re.fullmatch(r"seeding until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(Quick Tracker: 60 min\)", seeding["seeding"])
    page = admin_client.get("/admin/requests?status=deleted").get_data(as_text=True)
    assert f"Torrent Elantris [M4B]: {seeding['seeding']}" in page and "remove-seeding" in page
    assert any(m.startswith(f"Kept 'Elantris [M4B]' ({info_hash})") for m in request_event_messages(request))

    # the limit is not reached yet (it has seeded seconds): cleanup, which now sees deleted requests, keeps it
    result, _ = run_cleanup()
    assert result == {"success": True, "removed": 0, "kept": 1} and download_client().get(info_hash) is not None

    result, events = _cleanup_as_if_seeded(HOUR)
    assert result == {"success": True, "removed": 1, "kept": 0}
    assert download_client().get(info_hash) is None
    wait_for(lambda: not folder.exists(), 10, message="the torrent's files to be deleted")
    assert DownloadHistory.get_by_id(row.id).download_status == "removed"
    assert any("and its files: it seeded 60 min" in m and "its request is deleted" in m for m in events)


def test_a_cancelled_request_keeps_its_finished_torrent_until_its_ratio_is_reached(real, client, bearer):
    """The monitor had not seen it finish yet (its row says downloading): the client's word decides."""
    folder, info_hash = _book(real, finished=True)
    request = _request(real, info_hash, "Ratio Tracker", status="downloading", download_status="downloading")

    body = client.post(f"/api/requests/{request.id}/cancel", headers=bearer).get_json()
    assert Request.get_by_id(request.id).status == "cancelled" and download_client().get(info_hash) is not None
    assert body["seedingTorrents"] == [info_hash] and body["removedTorrents"] == []
    shown = client.get(f"/api/requests/{request.id}", headers=bearer).get_json()["request"]
    assert shown["seedingTorrents"][0]["seeding"] == "seeding until ratio 1 (Ratio Tracker: ratio 1)"

    result, _ = _cleanup_as_if_seeded(10 * HOUR, ratio=0.5)        # time does not count for this indexer
    assert result["removed"] == 0 and (folder / "02.m4b").exists()
    result, events = _cleanup_as_if_seeded(0, ratio=1.0)
    assert result == {"success": True, "removed": 1, "kept": 0}
    assert download_client().get(info_hash) is None
    wait_for(lambda: not folder.exists(), 10, message="the torrent's files to be deleted")
    assert any("ratio 1.00 (limit ratio 1)" in m and "its request is cancelled" in m for m in events)


@pytest.mark.parametrize("action", ["cancel", "delete"])
def test_an_unfinished_download_is_removed_with_its_partial_files_at_once(real, client, action, bearer):
    folder, info_hash = _book(real, finished=False)
    assert (folder / "01.m4b").exists()                                      # the half it has
    request = _request(real, info_hash, "Quick Tracker", status="downloading", download_status="downloading")

    if action == "cancel":
        body = client.post(f"/api/requests/{request.id}/cancel", headers=bearer).get_json()
    else:
        body = client.delete(f"/api/requests/{request.id}", headers=bearer).get_json()
    assert download_client().get(info_hash) is None
    wait_for(lambda: not (folder / "01.m4b").exists(), 10, message="the partial files to be deleted")
    assert body["removedTorrents"] == [info_hash] and body["seedingTorrents"] == []
    assert DownloadHistory.get(DownloadHistory.request == request.id).download_status == "removed"
    removed = f"Removed the unfinished 'Elantris [M4B]' ({info_hash}, 50%)"
    assert any(m.startswith(removed) for m in request_event_messages(request))


def test_an_admin_can_remove_a_kept_torrent_now_with_its_files(real, client, bearer):
    folder, info_hash = _book(real, finished=True)
    request = _request(real, info_hash, "Quick Tracker", status="available", download_status="completed")
    assert client.delete(f"/api/requests/{request.id}", headers=bearer).get_json()["seedingTorrents"] == [info_hash]

    body = client.post(f"/api/requests/{request.id}/remove-seeding", headers=bearer).get_json()
    assert body["removedTorrents"] == [info_hash] and body["keptTorrents"] == []
    assert download_client().get(info_hash) is None
    wait_for(lambda: not folder.exists(), 10, message="the torrent's files to be deleted")
    again = client.post(f"/api/requests/{request.id}/remove-seeding", headers=bearer)
    assert again.status_code == 409 and "no torrent of this request is kept seeding" in again.get_json()["error"]

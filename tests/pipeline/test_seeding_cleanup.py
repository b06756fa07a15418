"""cleanup_seeded_torrents: every candidate is reached each run, and a torrent another request still uses is kept.

The removal path runs against the REAL qbittorrent-nox (tests/daemons.py). Seeding time is the one thing a test
cannot wait for (INDEXER_SEEDING_MINUTES counts whole minutes), so the real client is wrapped to report an hour
more seeding than it has; everything else (look-up, removal, deletion of the files) is the daemon's.
"""
from __future__ import annotations

import os
import uuid
from datetime import timedelta

import pytest

from app.integrations import torrent as torrent_module
from app.integrations.qbittorrent import QBittorrentClient
from app.integrations.torrentfile import make_torrent, read_torrent
from app.models import Audiobook, DownloadHistory, Request, utcnow
from app.pipeline.download_state import DownloadState
from app.pipeline.monitor_policy import TorrentUser, holders, still_needs_torrent

from fakes.download_client import FakeDownloadClient
from helpers import SeededLonger, run_cleanup, wait_for

HOUR = 3600
SETTINGS = {"INDEXER_SEEDING_MINUTES": "Quick Tracker=60,Forever Tracker=0"}  # others: seed forever


# --- who still needs a torrent (pure) --------------------------------------------------------------------

@pytest.mark.parametrize("request_status,download_status,seeding_minutes,seeded,needs", [
    ("downloading", "downloading", 60, 0, True),        # still downloading it
    ("awaiting_import", "completed", 60, 10**6, True),  # organize will read the files again
    ("warn", "completed", 60, 10**6, True),
    ("downloaded", "completed", 60, 10**6, True),
    ("processing", "completed", 0, 10**6, True),
    ("available", "completed", 0, 10**6, True),         # its indexer seeds forever
    ("available", "completed", 60, HOUR - 1, True),     # its own seeding time is not reached yet
    ("available", "completed", 60, HOUR, False),        # seeded enough for it too
    ("cancelled", "completed", 0, 0, False),
    ("failed", "downloading", 0, 0, False),
    ("awaiting_search", "failed", 60, 0, False),        # it stalled on this torrent and moved on
    ("downloading", "removed", 60, 0, False),
    # kept seeding after its request let go of it (deleted, cancelled): holds it until its own limit
    ("deleted", "seeding", 60, HOUR - 1, True),
    ("cancelled", "seeding", 60, HOUR, False),
    ("deleted", "seeding", 0, 10**6, True),             # its indexer seeds forever
])
def test_which_other_requests_still_need_a_torrent(request_status, download_status, seeding_minutes, seeded, needs):
    user = TorrentUser("r2", request_status, download_status, seeding_minutes)
    assert still_needs_torrent(user, seeded) is needs
    assert holders([user], seeded) == ([user] if needs else [])


# --- against the real qbittorrent-nox ----------------------------------------------------------------------

@pytest.fixture
def real_client(qbittorrent, use_settings, redis_conn):
    use_settings(DOWNLOAD_CLIENT="qbittorrent", DOWNLOAD_CLIENT_URL=qbittorrent.url,
                 DOWNLOAD_CLIENT_USERNAME=qbittorrent.username, DOWNLOAD_CLIENT_PASSWORD=qbittorrent.password,
                 DOWNLOAD_DIR=str(qbittorrent.download_dir), **SETTINGS)
    real = QBittorrentClient(qbittorrent.url, qbittorrent.username, qbittorrent.password)
    wrapped = SeededLonger(real, HOUR)
    torrent_module.set_client_factory(lambda kind: wrapped)
    yield wrapped
    torrent_module.set_client_factory(None)


def _seeding_book(qbittorrent, client) -> tuple:
    """A complete book seeding in qbittorrent-nox: (its folder, its info hash)."""
    folder = qbittorrent.download_dir / f"Brandon Sanderson - Elantris {uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "Elantris.m4b").write_bytes(os.urandom(200_000))
    torrent = make_torrent(folder)
    info_hash = read_torrent(torrent).info_hash
    client.real.add(torrent=torrent, category="readmeabook", tags=["test"], save_path=str(qbittorrent.download_dir))
    wait_for(lambda: getattr(client.real.get(info_hash), "state", None) is DownloadState.COMPLETE, 20,
             message="the book to be verified and seeding")
    return folder, info_hash


def _download(request, info_hash: str, indexer: str, *, status: str = "completed", completed_at=None):
    return DownloadHistory.create(request=request, indexer_name=indexer, torrent_name=f"book {info_hash[:6]}",
                                  torrent_hash=info_hash, download_client="qbittorrent", download_client_id=info_hash,
                                  download_status=status, selected=True, completed_at=completed_at or utcnow())


def _seed_forever_rows(book, count: int) -> None:
    """`count` available requests with completed downloads of seed-forever indexers, older than anything else."""
    long_ago = utcnow() - timedelta(days=90)
    request_ids = [uuid.uuid4() for _ in range(count)]
    Request.insert_many([{"id": rid, "audiobook": book.id, "status": "available"} for rid in request_ids]).execute()
    DownloadHistory.insert_many([
        {"id": uuid.uuid4(), "request": rid, "indexer_name": "Forever Tracker" if n % 2 else "Unlisted Tracker",
         "torrent_name": f"old {n}", "torrent_hash": f"{n:040x}", "download_client": "qbittorrent",
         "download_client_id": f"{n:040x}", "download_status": "completed", "selected": True,
         "completed_at": long_ago + timedelta(minutes=n)}
        for n, rid in enumerate(request_ids)]).execute()


def test_150_seed_forever_rows_do_not_hold_back_a_newer_torrent_that_is_due(qbittorrent, real_client):
    book = Audiobook.create(title="Elantris", author="Brandon Sanderson")
    _seed_forever_rows(book, 150)
    folder, info_hash = _seeding_book(qbittorrent, real_client)
    due = _download(Request.create(audiobook=book, status="available"), info_hash, "Quick Tracker")

    result, events = run_cleanup()

    assert result == {"success": True, "removed": 1, "kept": 150}
    assert real_client.real.get(info_hash) is None                   # gone from qbittorrent-nox …
    wait_for(lambda: not folder.exists(), 10, message="the files to be deleted")  # … with its files
    assert DownloadHistory.get_by_id(due.id).download_status == "removed"
    assert real_client.looked_up == [info_hash]  # seed-forever rows are not even looked up
    assert DownloadHistory.select().where(DownloadHistory.download_status == "completed").count() == 150
    assert any("150 seed forever" in m for m in events)


def test_a_torrent_another_request_still_uses_is_kept_and_the_event_says_why(qbittorrent, real_client):
    book = Audiobook.create(title="Elantris", author="Brandon Sanderson")
    folder, info_hash = _seeding_book(qbittorrent, real_client)
    seeded_enough = _download(Request.create(audiobook=book, status="available"), info_hash, "Quick Tracker")
    importing = Request.create(audiobook=book, status="awaiting_import")  # organize will read these files again
    _download(importing, info_hash, "Quick Tracker")

    result, events = run_cleanup()

    assert result == {"success": True, "removed": 0, "kept": 1}
    assert real_client.real.get(info_hash) is not None and folder.exists()
    assert DownloadHistory.get_by_id(seeded_enough.id).download_status == "completed"  # looked at again next run
    kept = [m for m in events if m.startswith("Kept")]
    assert len(kept) == 1 and f"request {importing.id} (awaiting_import) also uses this torrent" in kept[0]

    # once the other request is done with it (available, and seeded long enough for its indexer too), it goes
    Request.update(status="available").where(Request.id == importing.id).execute()
    result, _ = run_cleanup()
    assert result == {"success": True, "removed": 1, "kept": 0}
    assert real_client.real.get(info_hash) is None
    wait_for(lambda: not folder.exists(), 10, message="the files to be deleted")
    assert {row.download_status for row in DownloadHistory.select()} == {"removed"}


# --- paging, rows only ------------------------------------------------------------------------------------

def test_a_run_pages_through_more_than_one_batch_of_torrents_still_seeding(use_settings, redis_conn):
    """120 torrents of an indexer with a limit, not there yet, fill more than a page; the due one after them is
    still reached in the same run."""
    use_settings(**SETTINGS)
    client = FakeDownloadClient()
    torrent_module.set_client_factory(lambda kind: client)
    try:
        book = Audiobook.create(title="t", author="a")
        for n in range(120):
            info_hash = f"{n:040x}"
            client.put(info_hash, progress=1.0, state=DownloadState.COMPLETE, seeding_seconds=60)
            _download(Request.create(audiobook=book, status="available"), info_hash, "Quick Tracker",
                      completed_at=utcnow() - timedelta(days=1))
        due_hash = "f" * 40
        client.put(due_hash, progress=1.0, state=DownloadState.COMPLETE, seeding_seconds=HOUR)
        due_request = Request.create(id=uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff"), audiobook=book,
                                     status="available")
        _download(due_request, due_hash, "Quick Tracker")  # last by id and by completion time

        result, _ = run_cleanup()
    finally:
        torrent_module.set_client_factory(None)
    assert result == {"success": True, "removed": 1, "kept": 120}
    assert due_hash not in client.torrents and client.calls.count("remove:True") == 1

"""Plex library: matching table, the Plex client against the fake server, scans, recently added, retries."""
from __future__ import annotations

import pytest

from app.integrations import torrent as torrent_module
from app.integrations.errors import PermanentServiceError
from app.integrations.plex import PlexClient
from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.library.matching import BookQuery, LibraryIndex, LibraryItem, find_match
from app.library.titles import normalize_title
from app.models import Audiobook, DownloadHistory, Job, JobEvent, PlexLibrary, Request, utcnow

from fakes.download_client import FakeDownloadClient
from helpers import drain

ASIN = "B003P2WO5E"


# --- matching ------------------------------------------------------------------------------------

@pytest.mark.parametrize("book,item,matches", [
    (BookQuery("The Way of Kings (Unabridged)", "Brandon Sanderson"),
     LibraryItem("g", "The Way of Kings", "Brandon Sanderson"), True),
    (BookQuery("Foundation", "Isaac Asimov"), LibraryItem("g", "Foundation and Empire", "Isaac Asimov"), False),
    (BookQuery("Foundation and Empire", "Isaac Asimov"), LibraryItem("g", "Foundation", "Isaac Asimov"), False),
    (BookQuery("The Martian: A Novel", "Andy Weir"), LibraryItem("g", "The Martian", "Andy Weir"), True),
    (BookQuery("Leviathan Wakes, Book 1", "James S. A. Corey"),
     LibraryItem("g", "Leviathan Wakes", "James S.A. Corey"), True),
    (BookQuery("Project Hail Mary", "Andy Weir", "Ray Porter"),
     LibraryItem("g", "Project Hail Mary", "Ray Porter"), True),  # narrator as artist
    (BookQuery("Project Hail Mary", "Andy Weir"),
     LibraryItem("g", "Project Hail Mary", "Somebody Else Entirely"), True),  # title carries it
    (BookQuery("Dune", "Frank Herbert"), LibraryItem("g", "Dune Messiah", "Frank Herbert"), False),
    (BookQuery("The Hobbit", "J.R.R. Tolkien"),
     LibraryItem("g", "The Hobbit (Full Cast)", "J.R.R. Tolkien"), True),
    (BookQuery("Anything", "Anyone", asin=ASIN),
     LibraryItem(f"com.plexapp.agents.audible://{ASIN}?lang=en", "Totally Different", "X"), True),
    (BookQuery("The Way of Kings", "Brandon Sanderson", asin=ASIN),
     LibraryItem("com.plexapp.agents.audnexus://B0000000XX?lang=en", "The Way of Kings", "Brandon Sanderson"), False),
    (BookQuery("The Way of Kings", "Brandon Sanderson", asin=""),
     LibraryItem("g", "Unrelated", "Nobody"), False),  # empty ASIN
    (BookQuery("Star Wars", "George Lucas"), LibraryItem("g", "Star Wars", "George Lucas"), True),
    (BookQuery("Star Wars", "George Lucas"),
     LibraryItem("g", "Star Wars: Episode 4", "George Lucas"), False),  # a sequel is not the book
])
def test_matching_table(book, item, matches):
    assert (find_match(book, [item]) is not None) is matches


def test_normalisation():
    assert normalize_title("The Way of Kings (Unabridged)") == "the way of kings"
    assert normalize_title("Mistborn: The Final Empire, Book 1") == "mistborn the final empire"
    assert normalize_title("Gone Girl: A Thriller") == "gone girl"


def test_the_index_narrows_candidates():
    items = [LibraryItem(f"g{i}", f"Generic Title {i}", "Someone") for i in range(5000)]
    items.append(LibraryItem("target", "The Way of Kings", "Brandon Sanderson"))
    index = LibraryIndex(items)
    book = BookQuery("The Way of Kings", "Brandon Sanderson")
    assert [item.guid for item in index.candidates(book)] == ["target"]  # no "Generic Title n" comes close
    assert index.match(book).item.guid == "target"


# --- the Plex client against the fake server ----------------------------------------------------------

def test_the_client_pages_through_a_large_library(plex):
    plex.items = [plex.album(f"Book {i}", "Author") for i in range(1234)]
    client = PlexClient(plex.url, plex.token)
    titles = [item.title for item in client.albums(plex.section, page_size=500)]
    assert len(titles) == 1234 and len(set(titles)) == 1234
    assert plex.requests.count("/library/sections/3/all") == 3
    assert client.identity()["machineIdentifier"] == "fake"
    with pytest.raises(PermanentServiceError, match="PLEX_TOKEN"):
        list(PlexClient(plex.url, "wrong-token").albums(plex.section))
    with pytest.raises(PermanentServiceError, match="PLEX_LIBRARY_ID"):
        list(client.albums("99"))


def _downloaded(title, author, asin=None):
    book = Audiobook.create(title=title, author=author, audible_asin=asin)
    return Request.create(audiobook=book, status="downloaded")


def test_a_scan_fills_the_table_matches_downloaded_requests_and_removes_stale_rows(plex):
    plex.items = [plex.album("The Way of Kings", "Brandon Sanderson"),
                  plex.album("Foundation and Empire", "Isaac Asimov"),
                  plex.album("Old Book", "Gone Author")]
    kings = _downloaded("The Way of Kings (Unabridged)", "Brandon Sanderson")
    foundation = _downloaded("Foundation", "Isaac Asimov")
    job_id = add_job("scan_plex", {"libraryId": plex.section})
    drain(queue_names_for_group("scan_plex"))
    assert Job.get_by_id(job_id).result["totalScanned"] == 3
    assert PlexLibrary.select().count() == 3
    assert Request.get_by_id(kings.id).status == "available"
    assert Audiobook.get_by_id(kings.audiobook_id).plex_guid == plex.items[0]["guid"]
    assert Request.get_by_id(foundation.id).status == "downloaded"  # no false positive

    # the book leaves the library: its row goes, the request returns to downloaded
    plex.items = [plex.items[1]]
    drain_id = add_job("scan_plex", {})
    drain(queue_names_for_group("scan_plex"))
    assert Job.get_by_id(drain_id).result["removed"] == 2
    assert Request.get_by_id(kings.id).status == "downloaded"
    assert PlexLibrary.select().count() == 1

    plex.items = []  # an empty scan never empties the table
    add_job("scan_plex", {})
    drain(queue_names_for_group("scan_plex"))
    assert PlexLibrary.select().count() == 1


def test_only_one_scan_runs_at_a_time(plex, redis_conn):
    redis_conn.set("rmab:lock:scan_plex", "another-job")
    job_id = add_job("scan_plex", {})
    drain(queue_names_for_group("scan_plex"))
    job = Job.get_by_id(job_id)
    assert job.status == "completed" and job.result["skipped"] is True
    assert "Another library scan is running" in JobEvent.get(JobEvent.job == job_id).message


def test_recently_added_matches_against_the_whole_table(plex):
    PlexLibrary.create(plex_guid="plex://album/old", title="Old Match", author="Someone")
    plex.items = [plex.album(f"New {i}", "A", added_at=1_700_000_000 + i) for i in range(15)]
    old = _downloaded("Old Match", "Someone")
    job_id = add_job("plex_recently_added_check", {})
    drain(queue_names_for_group("plex_recently_added_check"))
    assert Job.get_by_id(job_id).result == {"success": True, "checked": 10, "matchedDownloads": 1}
    titles = {row.title for row in PlexLibrary.select()}
    assert "New 14" in titles and "New 4" not in titles  # the 10 newest only
    assert Request.get_by_id(old.id).status == "available"


def test_recently_added_without_plex_is_skipped_not_failed(settings, redis_conn):
    job_id = add_job("plex_recently_added_check", {})
    drain(queue_names_for_group("plex_recently_added_check"))
    job = Job.get_by_id(job_id)
    assert job.status == "completed" and job.result["skipped"] is True
    assert JobEvent.get(JobEvent.job == job_id).level == "warn"


def test_match_plex_is_deprecated_but_works(plex):
    plex.items = [plex.album("Dune", "Frank Herbert")]
    add_job("scan_plex", {})
    drain(queue_names_for_group("scan_plex"))
    request = _downloaded("Dune", "Frank Herbert")
    job_id = add_job("match_plex", {"requestId": str(request.id), "audiobookId": str(request.audiobook_id),
                                    "title": "Dune", "author": "Frank Herbert"})
    drain(queue_names_for_group("maintenance"))
    assert Request.get_by_id(request.id).status == "available"
    assert "deprecated" in JobEvent.select().where(JobEvent.job == job_id).first().message


def test_retry_failed_imports_asks_the_client_for_the_path_least_recently_tried_first(settings, redis_conn):
    from datetime import timedelta

    client = FakeDownloadClient()
    torrent_module.set_client_factory(lambda kind: client)
    try:
        requests = []
        for i in range(3):
            book = Audiobook.create(title=f"T{i}", author="A")
            request = Request.create(audiobook=book, status="awaiting_import",
                                     last_import_at=None if i == 0 else utcnow() - timedelta(hours=i))
            DownloadHistory.create(request=request, download_client="qbittorrent", download_client_id=f"{i:040x}",
                                   download_path=f"/stored/{i}", download_status="completed", selected=True)
            requests.append(request)
        client.put(f"{0:040x}", name="moved-book")
        job_id = add_job("retry_failed_imports", {})
        drain(queue_names_for_group("maintenance"))
    finally:
        torrent_module.set_client_factory(None)
    assert Job.get_by_id(job_id).result == {"success": True, "queued": 3}
    paths = {str(j.request_id): j.payload["downloadPath"] for j in Job.select().where(Job.type == "organize_files")}
    assert paths[str(requests[0].id)] == "/downloads/moved-book"  # the client's current path wins
    assert paths[str(requests[1].id)] == "/stored/1"                # fallback to the stored path
    assert all(Request.get_by_id(r.id).last_import_at is not None for r in requests)

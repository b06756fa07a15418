"""A request for a book already in the Plex library is refused (409 with its plexGuid) and creates nothing: by
ASIN, by title and author (series decoration both ways round, a sequel is not the book), in a library of any size,
and after every change a scan writes."""
from __future__ import annotations

import pytest

from app.models import Audiobook, Job, PlexLibrary, Request

from builders import BEARER

ASIN = "B003P2WO5E"


def _in_library(title: str, author: str, guid: str, asin: str | None = None) -> None:
    PlexLibrary.create(plex_guid=guid, title=title, author=author, asin=asin, plex_library_id="1")


def _post(client, **body):
    return client.post("/api/requests", json={"title": "The Way of Kings", "author": "Brandon Sanderson", **body},
                       headers=BEARER)


def _nothing_created() -> bool:
    return Audiobook.select().count() == 0 and Request.select().count() == 0 and Job.select().count() == 0


# --- already in the library -------------------------------------------------------------------------

def test_a_book_the_library_has_by_asin_is_refused_and_nothing_is_created(client, redis_conn):
    _in_library("Totally Different Title", "X", "plex://album/1", asin=ASIN)
    response = _post(client, asin=ASIN)
    assert response.status_code == 409
    assert response.get_json() == {"success": False, "plexGuid": "plex://album/1",
                                   "error": "already available in the library: Totally Different Title"}
    assert _nothing_created()
    assert redis_conn.dbsize() == 0  # no job was enqueued


def test_a_book_the_library_has_by_title_and_author_is_refused(client, redis_conn):
    """The decorated title ("(Unabridged)") is the book; the same title by another author and another book by
    the same author, both stored first, are not: the 409 names the one item that is."""
    _in_library("The Way of Kings", "Someone Else", "plex://album/other-author")
    _in_library("Words of Radiance", "Brandon Sanderson", "plex://album/other-book")
    _in_library("The Way of Kings", "Brandon Sanderson", "plex://album/wok")
    response = _post(client, title="The Way of Kings (Unabridged)")
    assert response.status_code == 409
    assert response.get_json()["plexGuid"] == "plex://album/wok"
    assert response.get_json()["error"] == "already available in the library: The Way of Kings"
    assert _nothing_created()


@pytest.mark.parametrize("title, author, library_title, filler", [
    ("It", "Stephen King", "It", "Written in {n} Bits of Time"),  # every filler row contains "it"
    ("The Name of the Wind", "Patrick Rothfuss", "The Name of the Wind: The Kingkiller Chronicle, Book 1",
     "The Wind {n}: A Name of Another Book"),
    ("Leviathan Wakes: The Expanse, Book 1", "James S.A. Corey", "Leviathan Wakes", "Leviathan Wakes {n} Times"),
])
def test_a_big_library_is_searched_in_full_and_series_titles_match(client, redis_conn, title, author,
                                                                   library_title, filler):
    PlexLibrary.insert_many([{"plex_guid": f"plex://album/filler{n}", "title": filler.format(n=n),
                              "author": "Someone Else", "plex_library_id": "1"} for n in range(650)]).execute()
    _in_library(library_title, author, "plex://album/wanted")
    response = _post(client, title=title, author=author)
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["plexGuid"] == "plex://album/wanted"
    assert _nothing_created()


def test_a_sequel_named_after_the_series_is_not_the_book(client, redis_conn):
    _in_library("Children of Ruin: Children of Time, Book 2", "Adrian Tchaikovsky", "plex://album/ruin")
    _in_library("Children of Ruin", "Adrian Tchaikovsky", "plex://album/ruin-bare")
    response = _post(client, title="Children of Time", author="Adrian Tchaikovsky")
    assert response.status_code == 201, response.get_json()


def test_the_library_check_sees_every_change_a_scan_writes(client, redis_conn):
    """The index is cached in the web process: a scan in another process that adds, renames or removes an item
    is seen by the next request (the table's fingerprint changed)."""
    from app.integrations.plex import PlexItem
    from app.jobs.logger import create_job_logger
    from workers.processors.scan_plex import _upsert

    def scanned(guid: str, title: str) -> None:  # what scan_plex writes, from another process
        _upsert([PlexItem(guid, guid, title, "Brandon Sanderson", 2010, 1, 1, "", "")], "1",
                create_job_logger(None, "ScanPlex"))

    scanned("plex://album/a", "Elantris")
    assert _post(client, title="The Way of Kings").status_code == 201  # the index is loaded now
    scanned("plex://album/a", "Words of Radiance: The Stormlight Archive, Book 2")  # renamed: same row count
    assert _post(client, title="Words of Radiance").status_code == 409
    scanned("plex://album/b", "Mistborn: The Final Empire")
    assert _post(client, title="The Final Empire (Mistborn #1)").status_code == 409
    PlexLibrary.delete().where(PlexLibrary.plex_guid == "plex://album/b").execute()  # a stale row removed
    assert _post(client, title="The Final Empire (Mistborn #1)").status_code == 201


@pytest.mark.parametrize("library_title, library_asin, body", [
    ("Words of Radiance", None, {}),                            # another book by the same author
    ("The Way of Kings", "B0000000XX", {"asin": ASIN}),         # same title, a different ASIN: another edition
    ("Foundation and Empire", None, {"title": "Foundation", "author": "Isaac Asimov"}),
])
def test_a_book_the_library_does_not_have_is_created(client, redis_conn, library_title, library_asin, body):
    _in_library(library_title, "Brandon Sanderson", "plex://album/1", asin=library_asin)
    response = _post(client, **body)
    assert response.status_code == 201, response.get_json()
    assert Request.select().count() == 1 and Job.select().count() == 1

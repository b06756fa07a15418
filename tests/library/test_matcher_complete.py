"""The matcher never silently misses and a book added to Plex by hand completes a request
waiting in awaiting_search / awaiting_import / warn / failed too, through the scan jobs."""
from __future__ import annotations

import random

import pytest

from app.audiobook_requests import state
from app.audiobook_requests.state import RequestStatus
from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.library import matching
from app.library.matching import BookQuery, LibraryIndex, LibraryItem, find_match
from app.models import Audiobook, Job, Request

from helpers import drain

SERIES = 70


def _star_wars_library() -> list[LibraryItem]:
    """70 episodes, newest first, then the film's own book last: every title word is shared by 70+ items."""
    episodes = [LibraryItem(f"ep{n}", f"Star Wars: Episode {n}", "George Lucas") for n in range(SERIES, 0, -1)]
    return episodes + [LibraryItem("the-one", "Star Wars", "George Lucas")]


def test_a_title_whose_words_many_items_share_is_still_found():
    found = LibraryIndex(_star_wars_library()).match(BookQuery("Star Wars", "George Lucas"))
    assert found is not None and (found.item.guid, found.score) == ("the-one", 100.0)


@pytest.mark.parametrize("episode", range(1, SERIES + 1))
def test_every_book_of_a_70_book_series_finds_its_own_item(episode):
    index = LibraryIndex(_star_wars_library())
    found = index.match(BookQuery(f"Star Wars: Episode {episode} (Unabridged)", "George Lucas"))
    assert found is not None and found.item.guid == f"ep{episode}"


@pytest.mark.slow
@pytest.mark.parametrize("with_numpy", [True, False])
def test_the_index_answers_exactly_as_all_pairs_matching(with_numpy, monkeypatch):
    if not with_numpy:  # without numpy, rapidfuzz's process.extract per request instead of cdist
        monkeypatch.setattr(matching, "numpy", None)
    rng = random.Random(3)
    words = ["star", "wars", "night", "river", "storm", "crown", "glass", "iron", "wolf", "sea", "the", "of"]
    # series and edition decoration on either side, so the title forms the index searches are checked too
    decorations = ["", "", "", ": Wolf Saga, Book {n}", " (Sea Cycle #{n})", "Crown {n}: ", ": The Iron Sea",
                   ": Book One of the Star Wars"]

    def decorated(title: str, n: int) -> str:
        decoration = rng.choice(decorations).format(n=n)
        return decoration + title if decoration.endswith(": ") else title + decoration

    items = [LibraryItem(f"g{i}", decorated(" ".join(rng.sample(words, rng.randint(1, 4))) + rng.choice(
        ["", f" {i % 9}"]), i % 5), rng.choice(["Ann Reed", "Ben Hale", "Cara Voss"])) for i in range(2000)]
    books = [BookQuery(decorated(" ".join(rng.sample(words, rng.randint(1, 4))), 1),
                       rng.choice(["Ann Reed", "Ben Hale", "X"])) for _ in range(150)]
    index = LibraryIndex(items)
    expected = [find_match(book, items) for book in books]
    assert sum(match is not None for match in expected) > 50  # the comparison covers many real matches
    assert sum(match is not None and match.item.title != book.title
               for match, book in zip(expected, books, strict=True)) > 20  # many through decoration
    assert [(m.item.guid, m.score) if m else None for m in index.match_all(books)] == \
           [(m.item.guid, m.score) if m else None for m in expected]


def test_the_asin_decides_through_the_index():
    asin = "B003P2WO5E"
    items = _star_wars_library() + [LibraryItem(f"com.plexapp.agents.audible://{asin}?lang=en", "Other", "X"),
                                    LibraryItem("com.plexapp.agents.audible://B0000000XX?lang=en", "Star Wars", "G")]
    index = LibraryIndex(items)
    assert index.match(BookQuery("Star Wars", "George Lucas", asin=asin)).reason == "asin"
    assert index.match(BookQuery("Nothing Like It", "Nobody", asin="B0000000ZZ")) is None
    assert LibraryIndex([]).match(BookQuery("Star Wars", "George Lucas")) is None


# --- through the scan jobs against the fake Plex -------------------------------------------------------------

def _request(title, status, author="George Lucas"):
    return Request.create(audiobook=Audiobook.create(title=title, author=author), status=status,
                          error_message="old error", search_attempts=3, import_attempts=2)


def _monitor(request) -> str:
    return add_job("monitor_download", {"requestId": str(request.id), "downloadHistoryId": "h" * 8,
                                        "downloadClientId": "ab" * 20, "downloadClient": "qbittorrent"}, delay=3600)


def test_a_scan_finds_star_wars_among_its_70_episodes(plex):
    plex.items = [plex.album(item.title, item.author) for item in _star_wars_library()]
    film, episode = _request("Star Wars", "downloaded"), _request("Star Wars: Episode 5", "downloaded")
    job_id = add_job("scan_plex", {})
    drain(queue_names_for_group("scan_plex"))
    assert Job.get_by_id(job_id).result["matchedDownloads"] == 2
    assert Audiobook.get_by_id(film.audiobook_id).plex_guid == plex.items[-1]["guid"]
    assert Audiobook.get_by_id(episode.audiobook_id).plex_guid == plex.items[SERIES - 5]["guid"]


@pytest.mark.parametrize("job_type", ["scan_plex", "plex_recently_added_check"])
def test_a_book_added_by_hand_completes_a_waiting_request_and_stops_its_jobs(plex, job_type):
    """Through the real state machine: `available` is entered from the waiting statuses too."""
    plex.items = [plex.album(title, "George Lucas", added_at=1_700_000_000 + i)
                  for i, title in enumerate(["Searching Book", "Importing Book", "Warned Book", "Failed Book",
                                             "Downloading Book"])]
    waiting = {status: _request(title, status) for status, title in [
        ("awaiting_search", "Searching Book"), ("awaiting_import", "Importing Book"), ("warn", "Warned Book"),
        ("failed", "Failed Book")]}
    downloading = _request("Downloading Book", "downloading")
    queued_search = add_job("search_indexers", {"requestId": str(waiting["awaiting_search"].id), "audiobook": {
        "id": str(waiting["awaiting_search"].audiobook_id), "title": "Searching Book", "author": "George Lucas"}},
        delay=3600)
    stale_monitor, live_monitor = _monitor(waiting["failed"]), _monitor(downloading)

    job_id = add_job(job_type, {})
    drain(queue_names_for_group(job_type))

    assert Job.get_by_id(job_id).result["matchedDownloads"] == 4
    for request in waiting.values():
        after = Request.get_by_id(request.id)
        assert (after.status, after.error_message, after.search_attempts, after.import_attempts) == \
               ("available", None, 0, 0)
        assert after.completed_at is not None and Audiobook.get_by_id(request.audiobook_id).plex_guid
    assert Job.get_by_id(queued_search).status == "cancelled"
    assert Job.get_by_id(stale_monitor).status == "cancelled"  # the torrent's monitoring stops
    assert Request.get_by_id(downloading.id).status == "downloading"  # its own pipeline finishes it
    assert Job.get_by_id(live_monitor).status == "delayed"


def test_statuses_the_state_machine_refuses_are_not_matched(plex, monkeypatch):
    """The matched statuses follow state.TRANSITIONS: were `available` enterable only from `downloaded`, a waiting
    request would be neither touched nor its jobs cancelled."""
    monkeypatch.setitem(state.TRANSITIONS, RequestStatus.AVAILABLE, (RequestStatus.DOWNLOADED,))
    plex.items = [plex.album("Searching Book", "George Lucas"), plex.album("Done Book", "George Lucas")]
    waiting, done = _request("Searching Book", "awaiting_search"), _request("Done Book", "downloaded")
    monitor = _monitor(waiting)
    add_job("scan_plex", {})
    drain(queue_names_for_group("scan_plex"))
    assert Request.get_by_id(waiting.id).status == "awaiting_search"
    assert Job.get_by_id(monitor).status == "delayed"
    assert Request.get_by_id(done.id).status == "available"


@pytest.mark.parametrize("job_type", ["scan_plex", "plex_recently_added_check"])
def test_scans_match_series_titles_and_leave_sequels_alone(plex, job_type):
    """Through the scan jobs: Plex albums tagged with their series complete the requests for
    their books (whichever side carries the series, and a book added by hand to a waiting request), never
    the request for the book a sequel's series is named after."""
    plex.items = [plex.album(title, author, added_at=1_700_000_000 + i) for i, (title, author) in enumerate([
        ("The Name of the Wind: The Kingkiller Chronicle, Book 1", "Patrick Rothfuss"),
        ("The Wise Man's Fear: The Kingkiller Chronicle, Book 2", "Patrick Rothfuss"),
        ("Leviathan Wakes", "James S. A. Corey"),
        ("Children of Ruin: Children of Time, Book 2", "Adrian Tchaikovsky"),
        ("The Eye of the World: Book One of The Wheel of Time", "Robert Jordan"),
    ])]
    wind = _request("The Name of the Wind", "downloaded", "Patrick Rothfuss")
    wakes = _request("Leviathan Wakes (Expanse #1)", "downloaded", "James S.A. Corey")
    eye = _request("The Eye of the World: The Wheel of Time", "awaiting_search", "Robert Jordan")  # added by hand
    time_ = _request("Children of Time", "downloaded", "Adrian Tchaikovsky")
    job_id = add_job(job_type, {})
    drain(queue_names_for_group(job_type))
    assert Job.get_by_id(job_id).result["matchedDownloads"] == 3
    for request, item in [(wind, plex.items[0]), (wakes, plex.items[2]), (eye, plex.items[4])]:
        assert Request.get_by_id(request.id).status == "available"
        assert Audiobook.get_by_id(request.audiobook_id).plex_guid == item["guid"]
    assert Request.get_by_id(time_.id).status == "downloaded"

"""Outside data and credentials, through the fake Prowlarr and Plex on real sockets.

- Cleaning: a result or a Plex item with a NUL or a lone surrogate is cleaned where it enters; one that still cannot be
  stored is skipped with an event; a request's message never carries a database's error text.
- Redirects: the Prowlarr JSON client and every Plex call refuse to follow a redirect: the host it names receives
  nothing, the health check is not ok and says which setting to fix.
- Retries: a re-run of a download job fetches its link as Prowlarr gave it (the passkey whole), while the job page
  and the API show it redacted; a link that lost its secret to redaction is refused before any request.
"""
from __future__ import annotations

import json
import uuid

import pytest

from app.audiobook_requests.failures import fail_request_for_job
from app.audiobook_requests.messages import STORING_FAILED, request_message
from app.integrations.errors import PermanentServiceError
from app.integrations.health import check
from app.integrations.plex import PlexClient, PlexItem, parse_item
from app.integrations.prowlarr import ProwlarrClient, has_redaction_marker, parse_release
from app.integrations.torrentfile import bencode, read_torrent
from app.jobs.queues import queue_names_for_group
from app.library.plex_rows import item_problem
from app.models import Audiobook, DownloadHistory, Job, PlexLibrary, Request
from app.pipeline.ranking import Release
from app.pipeline.release_search import storage_problem
from app.redaction import REDACTED
from app.validation import clean_text

from builders import BEARER, event_messages
from fakes.http import Recorder
from fakes.prowlarr import FakeRelease
from helpers import drain

MiB = 1024 * 1024
AUTHOR = "Brandon Sanderson"
DIRTY = "\x00Bad\ud800 Title\x07"


def _torrent(name: str) -> bytes:
    return bencode({"info": {"name": name, "piece length": 262144, "pieces": b"p" * 20, "length": 5}})


def _create_request(client, title: str) -> str:
    response = client.post("/api/requests", json={"title": title, "author": AUTHOR}, headers=BEARER)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["request"]["id"]


# --- the pure parts, by table ---------------------------------------------------------------------

@pytest.mark.parametrize("text, clean", [
    ("The Way of Kings", "The Way of Kings"),
    ("a\x00b", "ab"),
    ("x\ud800y\udfffz", "x\ufffdy\ufffdz"),
    ("tab\tnew\nline\r", "tab\tnew\nline\r"),
    ("\x07\x1b[31mred\x7f\x85", "[31mred"),
    ("🎧 Ça İstanbul", "🎧 Ça İstanbul"),
])
def test_clean_text(text, clean):
    assert clean_text(text) == clean


def test_a_dirty_prowlarr_result_is_parsed_clean_and_a_huge_number_is_no_crash():
    release = parse_release({"title": DIRTY, "downloadUrl": "http://p/1/download?link=\x00a", "guid": "g\ud800",
                             "indexer": "Idx\x00", "size": 1e999, "seeders": "9" * 30, "infoHash": "ab\x00"})
    assert release is not None
    assert (release.title, release.indexer, release.guid, release.info_hash) == ("Bad\ufffd Title", "Idx", "g\ufffd",
                                                                                "ab")
    assert release.download_url == "http://p/1/download?link=a" and release.size == 0
    assert storage_problem(release) == f"seeders {'9' * 30} is out of range"


def test_a_dirty_plex_item_is_parsed_clean():
    item = parse_item({"guid": "plex://album/\x001", "title": DIRTY, "parentTitle": "A\ud800", "ratingKey": 7,
                       "year": 1e999, "addedAt": "x"})
    assert item is not None and (item.guid, item.title, item.author) == ("plex://album/1", "Bad\ufffd Title", "A\ufffd")
    assert item.year is None and item.added_at is None


@pytest.mark.parametrize("changes, problem", [
    ({}, None),
    ({"indexer": "x" * 256}, "indexer name is longer than 255 characters"),
    ({"seeders": 2**31}, f"seeders {2**31} is out of range"),
    ({"leechers": -2**31 - 1}, f"leechers {-2**31 - 1} is out of range"),
    ({"size": 2**63}, f"size {2**63} is out of range"),
    ({"seeders": 2**31 - 1, "size": 2**63 - 1, "indexer": "x" * 255}, None),
])
def test_which_releases_cannot_be_stored(changes, problem):
    release = Release(**{"title": "T", "size": 1, "seeders": 1, "indexer": "I", **changes})
    assert storage_problem(release) == problem


@pytest.mark.parametrize("changes, problem", [
    ({}, None),
    ({"guid": "g" * 256}, "guid is longer than 255 characters"),
    ({"year": 2**31}, f"year {2**31} is out of range"),
    ({"duration_ms": 2**63}, f"duration {2**63} is out of range"),
    ({"added_at": 10**20}, f"addedAt {10**20} is out of range"),
    ({"added_at": -1}, "addedAt -1 is out of range"),
])
def test_which_plex_items_cannot_be_stored(changes, problem):
    item = PlexItem(**{"rating_key": "1", "guid": "plex://album/1", "title": "T", "author": "A", "year": 2010,
                       "duration_ms": 1, "added_at": 1, "summary": "", "thumb": "", **changes})
    assert item_problem(item) == problem


@pytest.mark.parametrize("text, shown", [
    ("download_torrent failed: DataError: integer out of range", f"download_torrent failed: {STORING_FAILED}"),
    ("Retry of job 1 could not start: null character not permitted", f"Retry of job 1 could not start: "
                                                                      f"{STORING_FAILED}"),
    ("organize_files failed: peewee.OperationalError: server closed the connection unexpectedly",
     f"organize_files failed: {STORING_FAILED}"),
    ("search_indexers failed: UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800'",
     f"search_indexers failed: {STORING_FAILED}"),
    ("value too long for type character varying(255)", "S" + STORING_FAILED[1:]),
    ("Prowlarr: search failed with HTTP 500", "Prowlarr: search failed with HTTP 500"),
    ("Download stalled (no progress for 6 h); release blocklisted", "Download stalled (no progress for 6 h); "
                                                                    "release blocklisted"),
])
def test_a_request_message_never_shows_database_text(text, shown):
    assert request_message(text) == shown


def test_a_job_failed_by_the_database_leaves_its_request_a_message_without_the_database_text(settings):
    request = Request.create(audiobook=Audiobook.create(title="T", author="A"), status="downloading")
    assert fail_request_for_job(request.id, "download_torrent", 'download_torrent failed: DataError: null '
                                'character not permitted\nCONTEXT:  unnamed portal parameter $3')
    message = Request.get_by_id(request.id).error_message
    assert message == f"download_torrent failed: {STORING_FAILED}" and "CONTEXT" not in message


# --- through the pipeline ---------------------------------------------------------------------------

@pytest.fixture
def pipeline(prowlarr, use_settings, fake_client, redis_conn):
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key, JOB_MAX_ATTEMPTS=1)
    return prowlarr


def _run_search_and_download(request_id: str) -> tuple[Job, Job | None]:
    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))
    search = Job.get((Job.type == "search_indexers") & (Job.request == request_id))
    download = Job.get_or_none((Job.type == "download_torrent") & (Job.request == request_id))
    return search, download


@pytest.mark.slow  # the first pipeline run of a module (over 1 s under load)
def test_a_result_with_nul_and_surrogates_is_cleaned_and_downloaded(client, pipeline, fake_client):
    title = f"Warbreaker {uuid.uuid4().hex[:6]}"
    pipeline.releases = [FakeRelease(f"{AUTHOR} - {title} [M4B]\x00\ud800", 700 * MiB, seeders=40,
                                     torrent=_torrent(f"{title}\x00"), indexer="Tracker\ud800")]
    request_id = _create_request(client, title)
    search, download = _run_search_and_download(request_id)
    assert search.status == "completed", search.error_message
    assert download is not None and download.status == "completed", download and download.error_message
    history = DownloadHistory.get(DownloadHistory.request == request_id)
    assert history.torrent_name == f"{AUTHOR} - {title} [M4B]\ufffd" and history.indexer_name == "Tracker\ufffd"
    assert Request.get_by_id(request_id).status == "downloading"


def test_a_result_that_cannot_be_stored_is_skipped_with_an_event_and_the_next_is_downloaded(client, pipeline,
                                                                                           fake_client):
    title = f"Elantris {uuid.uuid4().hex[:6]}"
    pipeline.releases = [FakeRelease(f"{AUTHOR} - {title} (Unabridged) [M4B]", 700 * MiB, seeders=10**12,
                                     torrent=_torrent("huge")),
                         FakeRelease(f"{AUTHOR} - {title} [MP3]", 300 * MiB, seeders=5, torrent=_torrent(title))]
    request_id = _create_request(client, title)
    search, download = _run_search_and_download(request_id)
    assert search.status == "completed" and download is not None and download.status == "completed"
    assert f"Skipped result '{AUTHOR} - {title} (Unabridged) [M4B]' from MyAudioTracker: seeders {10**12} is out " \
           f"of range" in event_messages(search.id)
    assert DownloadHistory.get(DownloadHistory.request == request_id).torrent_name == f"{AUTHOR} - {title} [MP3]"
    assert fake_client.get(read_torrent(_torrent(title)).info_hash) is not None


def test_an_interactive_pick_of_a_dirty_result_is_queued_not_a_500(client, pipeline, bearer):
    title = f"Mistborn {uuid.uuid4().hex[:6]}"
    pipeline.releases = [FakeRelease(f"{AUTHOR} - {title}\x00 [M4B]\ud83c", 700 * MiB, seeders=9),
                         FakeRelease(f"{AUTHOR} - {title} [M4B]", 700 * MiB, seeders=2**40)]
    request = Request.create(audiobook=Audiobook.create(title=title, author=AUTHOR), status="awaiting_search")
    listed = client.get(f"/api/requests/{request.id}/releases", headers=bearer)
    assert listed.status_code == 200, listed.get_data(as_text=True)
    rows = listed.get_json()["releases"]
    assert [row["title"] for row in rows] == [f"{AUTHOR} - {title} [M4B]\ufffd"]  # the unstorable one left out
    picked = client.post(f"/api/requests/{request.id}/releases", json={"guid": rows[0]["guid"]}, headers=bearer)
    assert picked.status_code == 202, picked.get_data(as_text=True)
    assert Job.get_by_id(picked.get_json()["jobId"]).payload["torrent"]["title"] == rows[0]["title"]


def test_a_plex_title_with_nul_and_surrogates_no_longer_fails_the_library_scan(plex):
    from app.jobs.service import add_job

    clean = plex.album("The Final Empire", AUTHOR)
    dirty = plex.album("Well\x00 of\ud800 Ascension", f"{AUTHOR}\x00")
    unstorable = {**plex.album("Hero of Ages", AUTHOR), "addedAt": 10**20}
    plex.items = [clean, dirty, unstorable]
    job_id = add_job("scan_plex", {})
    drain(queue_names_for_group("scan_plex"))
    job = Job.get_by_id(job_id)
    assert job.status == "completed", job.error_message
    titles = {row.plex_guid: (row.title, row.author) for row in PlexLibrary.select()}
    assert titles == {clean["guid"]: ("The Final Empire", AUTHOR), dirty["guid"]: ("Well of\ufffd Ascension", AUTHOR)}
    assert f"Skipped Plex item 'Hero of Ages': addedAt {10**20} is out of range" in event_messages(job_id)


# --- no redirect carries a credential ---------------------------------------------------------------

CONTAINER = {"version": "1.41.0", "MediaContainer": {"version": "1.41.0", "size": 0, "Metadata": []}}


@pytest.fixture
def collector():
    """Where a redirecting proxy points: it answers like Prowlarr and Plex would, and records everything."""
    server = Recorder(lambda path, headers: (200, json.dumps(CONTAINER).encode(), "application/json", {}))
    yield server
    server.stop()


@pytest.fixture
def redirector(collector):
    server = Recorder(lambda path, headers: (307, b"", "text/plain", {"Location": f"{collector.url}{path}"}))
    yield server
    server.stop()


def test_prowlarr_and_plex_refuse_a_redirect_and_the_other_host_receives_nothing(use_settings, redis_conn,
                                                                                 redirector, collector):
    key, token = "0123456789abcdef0123456789abcdef", "plex-token-abcdef123"
    settings = use_settings(PROWLARR_URL=redirector.url, PROWLARR_API_KEY=key, PLEX_URL=redirector.url,
                            PLEX_TOKEN=token, PLEX_LIBRARY_ID="3")
    for name, setting in (("prowlarr", "PROWLARR_URL"), ("plex", "PLEX_URL")):
        result = check(name, settings)
        assert result.ok is False and result.error == f"{setting} redirects to {collector.url}; set the final URL"
    with pytest.raises(PermanentServiceError, match="PROWLARR_URL redirects to"):
        ProwlarrClient(redirector.url, key).search("The Way of Kings")
    plex = PlexClient(redirector.url, token)
    for call in (lambda: list(plex.albums("3")), lambda: plex.recently_added("3"), lambda: plex.refresh("3", "/b")):
        with pytest.raises(PermanentServiceError, match="PLEX_URL redirects to"):
            call()
    assert collector.requests == []
    sent = json.dumps(redirector.requests)
    assert key in sent and token in sent  # sent only to the configured origin


def test_the_integration_test_api_reports_the_redirect(use_settings, redis_conn, redirector, collector, bearer):
    use_settings(PROWLARR_URL=redirector.url, PROWLARR_API_KEY="0123456789abcdef0123456789abcdef")
    from app import create_app
    from app.config import get_settings

    app = create_app(get_settings())
    response = app.test_client().post("/api/admin/integrations/prowlarr/test", headers=bearer)
    body = response.get_json()
    assert body["integration"]["ok"] is False, body
    assert body["integration"]["error"] == f"PROWLARR_URL redirects to {collector.url}; set the final URL"
    assert collector.requests == []


# --- a retry fetches the link whole; it is shown redacted -------------------------------------------

PASSKEY = "abc0123456789def0123456789abcdef"


@pytest.fixture
def indexer():
    """A tracker that serves its .torrent only with the right passkey (403 otherwise, as trackers answer),
    and answers 503 while `down`."""
    state = {"down": True}

    def answer(path: str, headers: dict):
        if state["down"]:
            return 503, b"maintenance", "text/plain", {}
        if f"passkey={PASSKEY}" not in path:
            return 403, b"invalid passkey", "text/plain", {}
        return 200, _torrent("Oathbringer"), "application/x-bittorrent", {}

    server = Recorder(answer)
    server.state = state  # type: ignore[attr-defined]
    yield server
    server.stop()


def test_a_retried_download_fetches_the_passkey_whole_and_never_shows_it(client, admin_client, pipeline, fake_client,
                                                                        indexer, bearer):
    title = f"Oathbringer {uuid.uuid4().hex[:6]}"
    link = f"{indexer.url}/download.php?id=7&passkey={PASSKEY}"
    pipeline.releases = [FakeRelease(f"{AUTHOR} - {title} [M4B]", 700 * MiB, seeders=9, link=link)]
    request_id = _create_request(client, title)
    _search, failed = _run_search_and_download(request_id)
    assert failed is not None and failed.status == "failed" and Request.get_by_id(request_id).status == "failed"

    indexer.state["down"] = False
    retried = client.post(f"/api/admin/job-retry/{failed.id}", headers=bearer)
    assert retried.status_code == 200, retried.get_json()
    drain(queue_names_for_group("download_torrent"))
    run = Job.get_by_id(retried.get_json()["jobId"])
    assert run.status == "completed", run.error_message
    assert indexer.requests[-1]["path"] == f"/download.php?id=7&passkey={PASSKEY}"
    assert fake_client.get(read_torrent(_torrent("Oathbringer")).info_hash) is not None

    shown = [admin_client.get(f"/admin/jobs/{job_id}").get_data(as_text=True) for job_id in (failed.id, run.id)]
    shown += [client.get(f"/api/admin/job-status/{job_id}", headers=bearer).get_data(as_text=True)
              for job_id in (failed.id, run.id)]
    shown.append(client.get(f"/api/requests/{request_id}", headers=bearer).get_data(as_text=True))
    assert f"passkey={REDACTED}" in shown[0]  # the job page shows the payload, redacted
    assert not [page for page in shown if PASSKEY in page or PASSKEY[:10] in page]


@pytest.mark.parametrize("link, marked", [
    ("https://t.example/dl.php?id=1&passkey=[REDACTED]", True),
    ("https://t.example/dl.php?id=1&passkey=%5BREDACTED%5D", True),
    ("https://t.example/announce/[redacted]/x", True),
    ("magnet:?xt=urn:btih:ab&tr=https%3A%2F%2Ft%2Fa%3Fpasskey%3D%255BREDACTED%255D", True),
    ("https://t.example/dl.php?id=1&passkey=abc", False),
])
def test_a_link_with_a_redaction_marker_is_recognised(link, marked):
    assert has_redaction_marker(link) is marked


def test_a_link_that_lost_its_passkey_to_redaction_is_refused_before_any_request(prowlarr, indexer):
    with pytest.raises(PermanentServiceError, match=r"holds a redacted secret") as refused:
        ProwlarrClient(prowlarr.url, prowlarr.api_key).fetch_release(f"{indexer.url}/dl.php?passkey={REDACTED}")
    assert "PROWLARR_API_KEY" not in str(refused.value)
    assert indexer.requests == [] and prowlarr.downloads == []


def test_a_403_from_a_release_link_does_not_blame_the_prowlarr_key(prowlarr):
    prowlarr.releases = [FakeRelease("Author - Book", 700 * MiB, error=403)]
    with pytest.raises(PermanentServiceError) as refused:
        ProwlarrClient(prowlarr.url, prowlarr.api_key).fetch_release(f"{prowlarr.url}/4/download?link=0&file=B")
    assert "HTTP 403" in str(refused.value) and "PROWLARR_API_KEY" not in str(refused.value)


# --- the torrent clients' answers ---------------------------------------------------------------------

HASH = "0123456789abcdef0123456789abcdef01234567"


def test_qbittorrent_names_and_paths_are_cleaned():
    from app.integrations.qbittorrent import QBittorrentClient
    from app.integrations.torrentfile import magnet_uri

    from fakes.qbittorrent5 import FakeQBittorrent5

    fake = FakeQBittorrent5().start()
    try:
        client = QBittorrentClient(fake.url, fake.username, fake.password)
        client.add(magnet=magnet_uri(HASH, "Book"), category="readmeabook", tags=[])
        fake.torrents[HASH].update(name="Bo\x00ok\ud800", save_path="/dl\x00", content_path="/dl/Bo\x00ok\udfff",
                                   state="stoppedUP\x1b")
        status = client.get(HASH)
    finally:
        fake.stop()
    assert status is not None
    assert (status.name, status.content_path, status.raw_state) == ("Book\ufffd", "/dl/Book\ufffd", "stoppedUP")


def test_transmission_names_errors_and_refusals_are_cleaned():
    from app.integrations.transmission import TransmissionClient

    torrent = {"hashString": HASH, "name": "Bo\x00ok\ud800", "status": 0, "percentDone": 0.5, "totalSize": 10,
               "downloadDir": "/dl\x00", "error": 3, "errorString": "No data found!\x00\udfff"}
    replies = iter([{"result": "success", "arguments": {"torrents": [torrent]}},
                    {"result": "duplicate\x00 torrent\ud800"}])
    server = Recorder(lambda path, headers: (200, json.dumps(next(replies)).encode(), "application/json", {}))
    try:
        client = TransmissionClient(server.url)
        status = client.get(HASH)
        with pytest.raises(PermanentServiceError) as refused:
            client.call("torrent-set")
    finally:
        server.stop()
    assert status is not None
    assert (status.name, status.content_path, status.error) == ("Book\ufffd", "/dl/Book\ufffd",
                                                                "No data found!\ufffd")
    assert str(refused.value) == "Transmission: torrent-set failed: duplicate torrent\ufffd"


# --- interactive results in Redis are redacted, the pick downloads the link whole --------------------

def test_interactive_results_are_kept_redacted_and_the_pick_downloads_the_whole_link(client, pipeline, fake_client,
                                                                                    indexer, redis_conn, bearer):
    indexer.state["down"] = False
    title = f"Rhythm of War {uuid.uuid4().hex[:6]}"
    link = f"{indexer.url}/download.php?id=9&passkey={PASSKEY}"
    pipeline.releases = [FakeRelease(f"{AUTHOR} - {title} [M4B]", 700 * MiB, seeders=9, link=link)]
    request = Request.create(audiobook=Audiobook.create(title=title, author=AUTHOR), status="awaiting_search")
    listed = client.get(f"/api/requests/{request.id}/releases", headers=bearer)
    assert listed.status_code == 200 and PASSKEY not in listed.get_data(as_text=True)

    kept = json.loads(redis_conn.get(f"rmab:releases:{request.id}"))
    assert PASSKEY not in json.dumps(kept["releases"])  # the results as kept: redacted
    assert [entry["downloadUrl"] for entry in kept["links"].values()] == [link]  # apart: what the pick needs

    guid = listed.get_json()["releases"][0]["guid"]
    picked = client.post(f"/api/requests/{request.id}/releases", json={"guid": guid}, headers=bearer)
    assert picked.status_code == 202, picked.get_json()
    drain(queue_names_for_group("download_torrent"))
    assert Job.get_by_id(picked.get_json()["jobId"]).status == "completed"
    assert indexer.requests[-1]["path"] == f"/download.php?id=9&passkey={PASSKEY}"

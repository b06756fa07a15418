"""How releases are fetched and read (issue 9, items 4, 6 and 13).

- 4: every malformed .torrent is a TorrentFileError; download_torrent skips a bad release for the next
  alternate, and fails at once, naming the releases, when every one failed for good.
- 6: links parsed from Prowlarr carry no `apikey`, so a stored payload runs again as it is.
- 13: the key goes to Prowlarr's origin only; at most MAX_REDIRECTS redirects are followed.
The processor tests run download_torrent in-process against the fake Prowlarr and the real qbittorrent-nox.
"""
from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path

import pytest
import requests

from app.integrations.errors import PermanentServiceError, TransientServiceError
from app.integrations.prowlarr import MAX_REDIRECTS, ProwlarrClient, parse_release, same_origin, without_api_key
from app.integrations.torrent import download_client
from app.integrations.torrentfile import (
    TorrentFileError,
    bdecode,
    bencode,
    magnet_uri,
    make_torrent,
    parse_magnet,
    read_torrent,
)
from app.jobs.queues import queue_names_for_group
from app.jobs.service import retry_job
from app.models import DownloadHistory, Job, JobEvent, Request
from workers.processors.download import ReleaseFailure, ends_the_job, no_release_usable

from fakes.http import QuietHandler, serve
from fakes.prowlarr import FakeProwlarr, FakeRelease
from helpers import API_TOKEN, drain

MiB = 1024 * 1024
BEARER = {"Authorization": f"Bearer {API_TOKEN}"}
HASH = "0123456789abcdef0123456789abcdef01234567"


# --- item 4: malformed .torrent files ---------------------------------------------------------------------

def _info(**changes) -> dict:
    info = {"name": "Book", "piece length": 262144, "pieces": b"p" * 20, "length": 5}
    info.update(changes)
    return {key: value for key, value in info.items() if value is not None}


def _torrent(**changes) -> bytes:
    return bencode({"info": _info(**changes)})


def _multi_file(files) -> bytes:
    return _torrent(length=None, files=files)


MALFORMED = {
    "the issue's name=int": b"d4:infod4:namei5eee",
    "empty": b"",
    "not bencode": b"not a torrent",
    "a list at the top": b"l1:ae",
    "a string at the top": b"4:spam",
    "no info": bencode({"announce": "http://t"}),
    "info is an int": b"d4:infoi1ee",
    "info is a list": bencode({"info": [1, 2]}),
    "info is a string": bencode({"info": "x"}),
    "truncated after info key": b"d4:info",
    "truncated inside info": _torrent()[:-5],
    "truncated string": b"d4:infod4:name10:abce",
    "no closing e": _torrent()[:-1],
    "trailing garbage": _torrent() + b"junk",
    "two documents": _torrent() + _torrent(),
    "name missing": _torrent(name=None),
    "name is a list": _torrent(name=["a"]),
    "name is a dict": _torrent(name={"a": 1}),
    "length is a string": _torrent(length="5"),
    "length is negative": _torrent(length=-1),
    "length is a list": _torrent(length=[5]),
    "length and files both": _torrent(files=[{"length": 1, "path": ["a"]}]),
    "neither length nor files": _torrent(length=None),
    "pieces missing": _torrent(pieces=None),
    "pieces is an int": _torrent(pieces=20),
    "pieces not a multiple of 20": _torrent(pieces=b"p" * 19),
    "pieces empty": _torrent(pieces=b""),
    "piece length zero": _torrent(**{"piece length": 0}),
    "piece length a string": _torrent(**{"piece length": "262144"}),
    "files is a dict": _multi_file({"length": 1}),
    "files is empty": _multi_file([]),
    "files entry is an int": _multi_file([7]),
    "file length missing": _multi_file([{"path": ["a"]}]),
    "file length a string": _multi_file([{"length": "1", "path": ["a"]}]),
    "file path missing": _multi_file([{"length": 1}]),
    "file path a string": _multi_file([{"length": 1, "path": "a"}]),
    "file path holds an int": _multi_file([{"length": 1, "path": ["a", 2]}]),
    "file path empty": _multi_file([{"length": 1, "path": []}]),
    "integer with no digits": b"d4:infod6:lengthiee",
    "integer not a number": b"d4:infod6:lengthixyzee",
    "integer with a leading zero": b"d4:infod6:lengthi05ee",
    "minus zero": b"i-0e",
    "integer with spaces": b"i 5e",
    "integer with underscores": b"i1_0e",
    "integer unterminated": b"i5",
    "integer with 5000 digits": b"i" + b"9" * 5000 + b"e",
    "string length with a leading zero": b"d4:infod4:name01:xee",
    "string length huge": b"d4:info99999999999999999:x",
    "string length with 5000 digits": b"9" * 5000 + b":x",
    "key is an int": b"di1e1:xe",
    "key is a list": b"dl1:ae1:xe",
    "duplicate key": b"d4:infod4:name1:a4:name1:bee",
    "unexpected byte": b"d4:infox",
    "deep lists": b"l" * 100_000 + b"e" * 100_000,
    "deep dicts": b"d1:a" * 50_000 + b"i0e" + b"e" * 50_000,
    "deep inside info": b"d4:infod4:name" + b"l" * 5000 + b"e" * 5000 + b"ee",
}


@pytest.mark.parametrize("data", list(MALFORMED.values()), ids=list(MALFORMED))
def test_every_malformed_torrent_is_a_torrent_file_error(data):
    with pytest.raises(TorrentFileError, match="not a valid torrent file"):
        read_torrent(data)


def test_non_bytes_are_a_torrent_file_error():
    for value in (None, "d4:infoe", 5):
        with pytest.raises(TorrentFileError):
            read_torrent(value)


def test_well_formed_variants_are_read():
    meta = read_torrent(_torrent())
    assert (meta.name, meta.total_size, len(meta.info_hash)) == ("Book", 5, 40)
    multi = _multi_file([{"length": 3, "path": ["a", "b.mp3"]}, {"length": 4, "path": ["c.m4b"]}])
    assert read_torrent(multi).total_size == 7
    assert read_torrent(_torrent(name="")).name == ""  # clients name such a torrent by its hash


@pytest.fixture(scope="module")
def valid_torrent(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("fuzz") / "Author - Book"
    folder.mkdir()
    (folder / "part 1.mp3").write_bytes(b"a" * 70_000)
    (folder / "part 2.mp3").write_bytes(b"b" * 1_000)
    return make_torrent(folder, piece_length=16 * 1024)


def _mutate(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return rng.randbytes(rng.randrange(1, 8))
    position = rng.randrange(len(data))
    kind = rng.randrange(6)
    if kind == 0:  # flip a byte
        return data[:position] + bytes([rng.randrange(256)]) + data[position + 1:]
    if kind == 1:  # a bencode token where it does not belong
        return data[:position] + rng.choice([b"i", b"l", b"d", b"e", b":", b"-", b"0", b"9"]) + data[position + 1:]
    if kind == 2:  # cut a run out
        return data[:position] + data[position + rng.randrange(1, 40):]
    if kind == 3:  # insert random bytes
        return data[:position] + rng.randbytes(rng.randrange(1, 8)) + data[position:]
    if kind == 4:  # truncate
        return data[:position]
    return data[:position] + data[position:position + rng.randrange(1, 60)] + data[position:]  # repeat a run


_KEYS = [b"info", b"name", b"length", b"files", b"path", b"pieces", b"piece length", b"announce"]


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(4 if depth < 4 else 2)
    if kind == 0:
        return rng.randrange(-5, 1 << 40)
    if kind == 1:
        return rng.randbytes(rng.randrange(0, 25))
    if kind == 2:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(_KEYS): _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def _swap_a_field(data: bytes, rng: random.Random) -> bytes:
    """The valid torrent with one dictionary field replaced by a random value of any type, or removed."""
    document = bdecode(data)
    node = document
    while True:
        key = rng.choice(sorted(node))
        child = node[key]
        if isinstance(child, list) and child and isinstance(child[0], dict) and rng.random() < 0.7:
            child = rng.choice(child)
        if isinstance(child, dict) and child and rng.random() < 0.7:
            node = child
            continue
        if rng.random() < 0.2:
            del node[key]
        else:
            node[key] = _random_value(rng)
        return bencode(document)


def test_mutated_and_random_bytes_only_ever_raise_torrent_file_error(valid_torrent):
    rng = random.Random(9)
    samples = [valid_torrent]
    for _ in range(3000):
        samples.append(_mutate(rng.choice(samples[-20:]), rng))
    samples += [_swap_a_field(valid_torrent, rng) for _ in range(1500)]
    samples += [bencode(_random_value(rng)) for _ in range(500)]
    samples += [rng.randbytes(rng.randrange(0, 300)) for _ in range(1000)]
    samples += [b"d4:info" + rng.randbytes(rng.randrange(0, 100)) for _ in range(500)]
    outcomes = {"read": 0, "refused": 0}
    for sample in samples:
        try:
            read_torrent(sample)
            outcomes["read"] += 1
        except TorrentFileError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 1000 and outcomes["read"] >= 1


def test_a_magnet_that_urlparse_rejects_is_a_torrent_file_error():
    with pytest.raises(TorrentFileError):
        parse_magnet("magnet://[::1/?xt=urn:btih:" + HASH)


# --- item 6: links without the key ------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("http://p:9696/4/download?apikey=KEY&link=abc&file=The+Book", "http://p:9696/4/download?link=abc&file=The+Book"),
    ("http://p/4/download?link=a%2Fb&apikey=KEY", "http://p/4/download?link=a%2Fb"),
    ("http://p/4/download?link=x&ApiKey=KEY&file=A%20B", "http://p/4/download?link=x&file=A%20B"),
    ("http://p/4/download?apikey=[REDACTED]&link=x", "http://p/4/download?link=x"),
    ("http://p/4/download?apikey=", "http://p/4/download"),
    ("http://p/4/download?apikey=a&apikey=b&link=x#frag", "http://p/4/download?link=x#frag"),
    ("http://p/4/download?link=x&apikeys=keep", "http://p/4/download?link=x&apikeys=keep"),
    ("https://tracker.example/torrents/12345", "https://tracker.example/torrents/12345"),
    ("http://p/page#apikey=x", "http://p/page#apikey=x"),
    (f"magnet:?xt=urn:btih:{HASH}&dn=A+B", f"magnet:?xt=urn:btih:{HASH}&dn=A+B"),
    ("", ""),
])
def test_without_api_key(url, expected):
    assert without_api_key(url) == expected


def test_parsed_releases_carry_no_api_key():
    item = {"title": "T", "size": 1, "guid": "https://indexer.example/api?t=get&id=7&apikey=IDX",
            "downloadUrl": "http://p/4/download?apikey=KEY&link=a",
            "magnetUrl": "http://p/4/download?apikey=KEY&link=b",
            "infoUrl": "https://indexer.example/details?id=7&apikey=IDX"}
    release = parse_release(item)
    assert release.download_url == "http://p/4/download?link=a"
    assert release.magnet_url == "http://p/4/download?link=b"
    assert release.guid == "https://indexer.example/api?t=get&id=7"
    assert "apikey" not in json.dumps(release.to_payload()).lower()


@pytest.fixture
def prowlarr():
    fake = FakeProwlarr().start()
    yield fake
    fake.stop()


def test_search_results_from_prowlarr_store_no_api_key(prowlarr):
    prowlarr.releases = [FakeRelease("Author - Book [M4B]", 700 * MiB), FakeRelease("Author - Book [MP3]", 300 * MiB)]
    releases = ProwlarrClient(prowlarr.url, prowlarr.api_key).search("Book Author")
    assert len(releases) == 2
    for release in releases:
        stored = json.dumps(release.to_payload())
        assert "apikey" not in stored.lower() and prowlarr.api_key not in stored
        assert release.download_url.startswith(f"{prowlarr.url}/4/download?link=")
    assert prowlarr.unauthorized_count == 0


def test_the_fake_reads_the_query_key_before_the_header_as_prowlarr_does(prowlarr):
    link = f"{prowlarr.url}/api/v1/search"
    right = {"X-Api-Key": prowlarr.api_key}
    assert requests.get(link, headers=right, timeout=5).status_code == 200
    assert requests.get(f"{link}?apikey=[REDACTED]", headers=right, timeout=5).status_code == 401
    assert requests.get(f"{link}?APIKEY=", headers=right, timeout=5).status_code == 401
    assert requests.get(f"{link}?apikey={prowlarr.api_key}", timeout=5).status_code == 200
    assert requests.get(link, timeout=5).status_code == 401
    assert prowlarr.unauthorized_count == 3


def test_a_stored_link_with_a_redacted_key_still_fetches(prowlarr):
    """Payloads stored before links lost their key hold `apikey=[REDACTED]`: the key is dropped on fetch."""
    prowlarr.releases = [FakeRelease("Author - Book", 700 * MiB, torrent=_torrent())]
    release = ProwlarrClient(prowlarr.url, prowlarr.api_key).fetch_release(
        f"{prowlarr.url}/4/download?apikey=[REDACTED]&link=0&file=Book")
    assert release.torrent == _torrent() and prowlarr.unauthorized_count == 0


# --- item 13: redirects -----------------------------------------------------------------------------------

class FakeIndexer:
    """An 'indexer' on its own port that records what it was sent.

    /torrent serves .torrent bytes; /hops/N redirects N more times before serving them; /loop redirects
    to itself; /magnet redirects to a magnet; /refuse answers 401.
    """

    def __init__(self, torrent: bytes):
        self.torrent, self.requests = torrent, []
        indexer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                indexer.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                path = self.path.split("?")[0]
                if path == "/loop":
                    return self._send(302, b"", "text/plain", {"Location": "/loop"})
                if path == "/magnet":
                    return self._send(301, b"", "text/plain", {"Location": magnet_uri(HASH, "Book")})
                if path == "/refuse":
                    return self._send(401, b"", "text/plain")
                if path.startswith("/hops/") and int(path.rsplit("/", 1)[1]) > 0:
                    left = int(path.rsplit("/", 1)[1]) - 1
                    return self._send(301, b"", "text/plain", {"Location": f"{indexer.url}/hops/{left}"})
                self._send(200, indexer.torrent, "application/x-bittorrent")

        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def indexer():
    fake = FakeIndexer(_torrent())
    yield fake
    fake.stop()


def _fetch_through(prowlarr: FakeProwlarr, target: str):
    """Prowlarr's proxy link answers 301 to `target`; fetch it as download_torrent does."""
    prowlarr.releases = [FakeRelease("Author - Book", 700 * MiB, redirect=target)]
    return ProwlarrClient(prowlarr.url, prowlarr.api_key).fetch_release(f"{prowlarr.url}/4/download?link=0&file=B")


def test_the_indexer_a_redirect_names_never_sees_the_key(prowlarr, indexer):
    assert _fetch_through(prowlarr, f"{indexer.url}/torrent").torrent == _torrent()
    assert len(indexer.requests) == 1
    seen = indexer.requests[0]
    assert "x-api-key" not in seen["headers"] and "apikey" not in seen["path"].lower()
    assert prowlarr.api_key not in json.dumps(seen)


def test_a_redirect_within_prowlarr_keeps_the_key(prowlarr):
    prowlarr.releases = [FakeRelease("Author - Book", 700 * MiB, redirect="/4/download?link=1&file=B"),
                         FakeRelease("Author - Book", 700 * MiB, torrent=_torrent())]
    fetched = ProwlarrClient(prowlarr.url, prowlarr.api_key).fetch_release(f"{prowlarr.url}/4/download?link=0")
    assert fetched.torrent == _torrent() and prowlarr.downloads == ["0", "1"] and prowlarr.unauthorized_count == 0


def test_a_redirect_loop_is_a_clear_error_for_that_release(prowlarr, indexer):
    with pytest.raises(PermanentServiceError, match=f"redirected more than {MAX_REDIRECTS} times"):
        _fetch_through(prowlarr, f"{indexer.url}/loop")
    assert len(indexer.requests) == MAX_REDIRECTS  # Prowlarr's own 301 was the first hop


@pytest.mark.parametrize("hops, allowed", [(5, True), (6, False)])
def test_at_most_five_redirects_are_followed(prowlarr, indexer, hops, allowed):
    target = f"{indexer.url}/hops/{hops - 1}"  # Prowlarr → indexer is the first hop
    if allowed:
        assert _fetch_through(prowlarr, target).torrent == _torrent()
    else:
        with pytest.raises(PermanentServiceError, match="redirected more than 5 times"):
            _fetch_through(prowlarr, target)


def test_a_redirect_to_a_magnet_ends_the_chain(prowlarr, indexer):
    assert _fetch_through(prowlarr, f"{indexer.url}/magnet").magnet == magnet_uri(HASH, "Book")


def test_a_refusal_by_the_indexer_is_about_that_release_not_the_prowlarr_key(prowlarr, indexer):
    with pytest.raises(PermanentServiceError) as refused:
        _fetch_through(prowlarr, f"{indexer.url}/refuse")
    assert refused.value.service.startswith("indexer") and "PROWLARR_API_KEY" not in str(refused.value)
    assert not ends_the_job(refused.value)


@pytest.mark.parametrize("url, other, same", [
    ("http://127.0.0.1:9696/4/download", "http://127.0.0.1:9696", True),
    ("http://prowlarr/4/download", "http://PROWLARR:80/base", True),
    ("https://p/x", "https://p:443", True),
    ("http://127.0.0.1:9697/x", "http://127.0.0.1:9696", False),
    ("https://127.0.0.1:9696/x", "http://127.0.0.1:9696", False),
    ("http://indexer.example/x", "http://prowlarr.example", False),
    ("http://prowlarr.example.evil/x", "http://prowlarr.example", False),
    ("http://p:notaport/x", "http://p", False),
])
def test_same_origin(url, other, same):
    assert same_origin(url, other) is same


# --- the decisions of download_torrent ------------------------------------------------------------------

@pytest.mark.parametrize("error, ends", [
    (PermanentServiceError("Prowlarr", "release download was refused with HTTP 401", 401), True),
    (TransientServiceError("Prowlarr", "cannot connect"), True),
    (TransientServiceError("Prowlarr", "release download failed with HTTP 429", 429), False),
    (TransientServiceError("Prowlarr", "release download failed with HTTP 500", 500), False),
    (PermanentServiceError("Prowlarr", "release download failed with HTTP 404", 404), False),
    (PermanentServiceError("Prowlarr", "release download was refused with HTTP 403", 403), False),
    (PermanentServiceError("Prowlarr", "release link redirected more than 5 times"), False),
    (PermanentServiceError("indexer tracker", "release download was refused with HTTP 401", 401), False),
    (TransientServiceError("indexer tracker", "cannot connect"), False),
    (TorrentFileError("not a valid torrent file: truncated data"), False),
])
def test_which_failures_end_the_job(error, ends):
    assert ends_the_job(error) is ends


@pytest.mark.parametrize("transient_flags, expected", [
    ((False,), PermanentServiceError),
    ((False, False, False), PermanentServiceError),
    ((True,), TransientServiceError),
    ((False, True), TransientServiceError),
])
def test_the_error_when_no_release_is_usable(transient_flags, expected):
    failures = [ReleaseFailure(f"Release {i}", "some reason", flag) for i, flag in enumerate(transient_flags)]
    error = no_release_usable(failures)
    assert type(error) is expected
    assert all(f"'Release {i}' (some reason)" in str(error) for i in range(len(failures)))


# --- download_torrent in-process, real qbittorrent-nox ----------------------------------------------------

@pytest.fixture
def configure(qbittorrent, prowlarr, use_settings, redis_conn):
    def apply(**extra):
        return use_settings(**{
            "PROWLARR_URL": prowlarr.url, "PROWLARR_API_KEY": prowlarr.api_key, "DOWNLOAD_CLIENT": "qbittorrent",
            "DOWNLOAD_CLIENT_URL": qbittorrent.url, "DOWNLOAD_CLIENT_USERNAME": qbittorrent.username,
            "DOWNLOAD_CLIENT_PASSWORD": qbittorrent.password, "DOWNLOAD_DIR": str(qbittorrent.download_dir),
            "JOB_BACKOFF_SECONDS": 1, **extra})
    return apply


@pytest.fixture
def pipeline(configure):
    return configure()


def _book(daemon, title: str) -> bytes:
    folder = daemon.download_dir / f"Brandon Sanderson - {title} [M4B]"
    folder.mkdir()
    (folder / f"{title}.m4b").write_bytes(os.urandom(100_000))
    return make_torrent(Path(folder))


def _request(client, title: str) -> str:
    response = client.post("/api/requests", json={"title": title, "author": "Brandon Sanderson"}, headers=BEARER)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["request"]["id"]


def _search_and_download(request_id: str) -> Job:
    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))
    return Job.get((Job.type == "download_torrent") & (Job.request == request_id))


def _events(job: Job) -> list[str]:
    return [e.message for e in JobEvent.select().where(JobEvent.job == job.id).order_by(JobEvent.created_at)]


def _release(title: str, variant: str, seeders: int, **kwargs) -> FakeRelease:
    return FakeRelease(f"Brandon Sanderson - {title} {variant}", 700 * MiB, seeders=seeders, **kwargs)


def test_a_malformed_best_release_is_skipped_for_the_alternate(pipeline, qbittorrent, prowlarr, client):
    title = f"Oathbringer {uuid.uuid4().hex[:6]}"
    torrent = _book(qbittorrent, title)
    prowlarr.releases = [_release(title, "(Unabridged) [M4B]", 90, torrent=b"d4:infod4:namei5eee"),
                         _release(title, "[M4B]", 5, torrent=torrent)]
    request_id = _request(client, title)
    job = _search_and_download(request_id)
    assert job.status == "completed" and job.attempts == 1
    history = DownloadHistory.get(DownloadHistory.request == request_id)
    assert history.torrent_name == f"Brandon Sanderson - {title} [M4B]"
    assert download_client().get(read_torrent(torrent).info_hash) is not None
    assert Job.select().where((Job.type == "monitor_download") & (Job.request == request_id)).count() == 1
    assert Request.get_by_id(request_id).status == "downloading"
    assert any("1/2" in m and "not a valid torrent file" in m for m in _events(job))


def test_when_every_release_is_malformed_the_request_fails_after_one_attempt(pipeline, qbittorrent, prowlarr,
                                                                                client):
    title = f"Rhythm of War {uuid.uuid4().hex[:6]}"
    truncated = _book(qbittorrent, title)[:-7]
    prowlarr.releases = [_release(title, "(Unabridged) [M4B]", 90, torrent=b"d4:infod4:namei5eee"),
                         _release(title, "[M4B]", 5, torrent=truncated)]
    request_id = _request(client, title)
    job = _search_and_download(request_id)
    assert job.status == "failed" and job.attempts == 1 and len(prowlarr.downloads) == 2
    request = Request.get_by_id(request_id)
    assert request.status == "failed"
    for release in prowlarr.releases:
        assert repr(release.title) in request.error_message
    assert "not a valid torrent file" in request.error_message
    assert DownloadHistory.select().where(DownloadHistory.request == request_id).count() == 0


def test_a_release_that_may_work_later_keeps_the_job_retryable(configure, qbittorrent, prowlarr, client):
    configure(JOB_MAX_ATTEMPTS=2)
    title = f"Dawnshard {uuid.uuid4().hex[:6]}"
    prowlarr.releases = [_release(title, "(Unabridged) [M4B]", 90, torrent=b"d4:infod4:namei5eee"),
                         _release(title, "[M4B]", 5, error=503)]
    request_id = _request(client, title)
    job = _search_and_download(request_id)
    assert job.status == "failed" and job.attempts == 2 and len(prowlarr.downloads) == 4
    assert "temporarily unavailable" in Request.get_by_id(request_id).error_message


def test_a_redirect_loop_on_the_best_release_falls_back_to_the_alternate(pipeline, qbittorrent, prowlarr, client,
                                                                          indexer):
    title = f"Tress {uuid.uuid4().hex[:6]}"
    torrent = _book(qbittorrent, title)
    prowlarr.releases = [_release(title, "(Unabridged) [M4B]", 90, redirect=f"{indexer.url}/loop"),
                         _release(title, "[M4B]", 5, torrent=torrent)]
    request_id = _request(client, title)
    job = _search_and_download(request_id)
    assert job.status == "completed"
    assert DownloadHistory.get(DownloadHistory.request == request_id).torrent_name.endswith(f"{title} [M4B]")
    assert any("redirected more than 5 times" in m for m in _events(job))


def test_a_retried_download_job_runs_its_stored_payload(configure, qbittorrent, prowlarr, client):
    """retry_job re-enqueues the stored payload (whole; redacted only when shown): its links work as stored."""
    configure(JOB_MAX_ATTEMPTS=1)
    title = f"Sixth of the Dusk {uuid.uuid4().hex[:6]}"
    torrent = _book(qbittorrent, title)
    prowlarr.releases = [_release(title, "[M4B]", 9, torrent=torrent, error=500)]
    request_id = _request(client, title)
    failed = _search_and_download(request_id)
    assert failed.status == "failed" and Request.get_by_id(request_id).status == "failed"
    stored = json.dumps(failed.payload)
    assert "apikey" not in stored.lower() and "REDACTED" not in stored

    prowlarr.releases[0].error = None  # the indexer is back
    retried = Job.get_by_id(retry_job(failed.id))
    drain(queue_names_for_group("download_torrent"))
    retried = Job.get_by_id(retried.id)
    assert retried.status == "completed", retried.error_message
    assert download_client().get(read_torrent(torrent).info_hash) is not None
    assert prowlarr.unauthorized_count == 0 and prowlarr.downloads == ["0", "0"]

"""Links from Prowlarr: parsed releases carry no `apikey` (so a stored payload runs again as it is), the key goes
to Prowlarr's origin only, and at most MAX_REDIRECTS redirects are followed. Against the fake Prowlarr and a fake
indexer on real sockets."""
from __future__ import annotations

import json

import pytest
import requests

from app.integrations.errors import PermanentServiceError
from app.integrations.prowlarr import MAX_REDIRECTS, ProwlarrClient, parse_release, same_origin, without_api_key
from app.integrations.torrentfile import magnet_uri
from workers.processors.download_torrent import ends_the_job

from fakes.indexer import MAGNET_HASH, SMALL_TORRENT
from fakes.prowlarr import FakeProwlarr, FakeRelease

MiB = 1024 * 1024
HASH = "0123456789abcdef0123456789abcdef01234567"


def _torrent() -> bytes:
    """A small well-formed .torrent: what Prowlarr or an indexer serves."""
    return SMALL_TORRENT


# --- links without the key ------------------------------------------------------------------------

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


# --- redirects -----------------------------------------------------------------------------------

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
    assert _fetch_through(prowlarr, f"{indexer.url}/magnet").magnet == magnet_uri(MAGNET_HASH, "Book")


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

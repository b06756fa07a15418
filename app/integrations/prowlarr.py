"""Prowlarr: release search and fetching a release link (GET /api/v1/search with X-Api-Key; proxy download links).

The API key travels only in the X-Api-Key header, and only to Prowlarr's own origin (scheme, host and
port of PROWLARR_URL): the JSON calls never follow a redirect, release links are followed by hand.
Links parsed from search results lose their `apikey` query parameter, so job payloads never carry the
key. A link's tracker passkey is kept (a re-run needs it; jobs.payload is redacted when shown); a link
that holds a redaction marker lost its secret and is refused before any request.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urljoin, urlsplit

import requests

from app.integrations.errors import PermanentServiceError, TransientServiceError, classify_status
from app.integrations.http import REDIRECT_STATUSES, request, request_at_origin
from app.pipeline.ranking import Release
from app.redaction import REDACTED
from app.validation import clean_text

AUDIOBOOK_CATEGORY = 3030
SERVICE = "Prowlarr"
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class ReleaseFile:
    """What a release link gave: .torrent bytes, or a magnet URI (Prowlarr answers 301 to it)."""

    torrent: bytes | None = None
    magnet: str | None = None


def without_api_key(url: str) -> str:
    """`url` without its `apikey` query parameters (any letter case); every other byte kept as it was.

    Prowlarr reads the query key before the X-Api-Key header, so a link carrying a stale or redacted
    `apikey` would be refused even with the right header.
    """
    head, hash_mark, fragment = url.partition("#")
    base, question_mark, query = head.partition("?")
    if not question_mark:
        return url
    kept = [part for part in query.split("&") if unquote_plus(part.split("=", 1)[0]).lower() != "apikey"]
    return base + ("?" + "&".join(kept) if kept else "") + hash_mark + fragment


def has_redaction_marker(url: str) -> bool:
    """Whether `url` carries [REDACTED] (plain or percent-encoded, any case) where a secret was."""
    folded = unquote_plus(unquote_plus(url)).upper()
    return REDACTED in folded


def origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) with the scheme's default port filled in; None for a URL with a bad port."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", port or _DEFAULT_PORTS.get(scheme)


def same_origin(url: str, other: str) -> bool:
    first = origin(url)
    return first is not None and first == origin(other)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON 1e999 is an infinite float
        return None


def _text(value: Any, default: str = "") -> str:
    return clean_text(str(value)) if value not in (None, "") else default


def _link(value: Any) -> str | None:
    return without_api_key(clean_text(value)) if isinstance(value, str) and value else None


def parse_release(item: Any) -> Release | None:
    """One search result; None for entries that cannot be used (no title, no link). Links lose `apikey`;
    text is cleaned (validation.clean_text): a NUL or a lone surrogate can neither be stored nor sent on."""
    if not isinstance(item, dict) or not isinstance(item.get("title"), str):
        return None
    download_url, magnet_url = _link(item.get("downloadUrl")), _link(item.get("magnetUrl"))
    if not download_url and not magnet_url:
        return None
    return Release(
        title=clean_text(item["title"]), size=_int(item.get("size")) or 0, seeders=_int(item.get("seeders")),
        leechers=_int(item.get("leechers")), indexer=_text(item.get("indexer")),
        indexer_id=_int(item.get("indexerId")), download_url=download_url, magnet_url=magnet_url,
        info_hash=clean_text(item["infoHash"]) if isinstance(item.get("infoHash"), str) else None,
        guid=without_api_key(_text(item.get("guid"))), publish_date=_text(item.get("publishDate")),
        protocol=_text(item.get("protocol"), "torrent"))


class ProwlarrClient:
    def __init__(self, url: str, api_key: str, timeout: float = 60.0):
        if not url or not api_key:
            raise PermanentServiceError(SERVICE, "PROWLARR_URL and PROWLARR_API_KEY must be set")
        self.url, self.timeout = url.rstrip("/"), timeout
        self._key_header = {"X-Api-Key": api_key}
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": "readmeabook-jobs"})

    def version(self) -> str:
        """GET /api/v1/system/status (needs the key) → its `version` ("" when the reply has none)."""
        body = self._get_json("/api/v1/system/status", "system status")
        return str(body.get("version") or "") if isinstance(body, dict) else ""

    def failing_indexers(self) -> list[tuple[str, str | None]]:
        """(name, disabled until) of each indexer Prowlarr reports failing: GET /api/v1/indexerstatus lists the
        blocked ones by indexerId only, so GET /api/v1/indexer names them (only when one is failing)."""
        statuses = self._get_json("/api/v1/indexerstatus", "indexer status")
        if not isinstance(statuses, list):
            raise TransientServiceError(SERVICE, "indexer status returned JSON that is not a list")
        failing = [s for s in statuses if isinstance(s, dict)]
        if not failing:
            return []
        indexers = self._get_json("/api/v1/indexer", "indexers")
        names = {_int(i.get("id")): _text(i.get("name")) for i in indexers if isinstance(i, dict)} \
            if isinstance(indexers, list) else {}
        return [(names.get(_int(s.get("indexerId"))) or f"indexer {_int(s.get('indexerId'))}",
                 _text(s.get("disabledTill")) or None) for s in failing]

    def _get_json(self, path: str, what: str, params: list[tuple[str, str]] | None = None) -> Any:
        response = request_at_origin(self.session, SERVICE, "PROWLARR_URL", "GET", f"{self.url}{path}",
                                     params=params, headers=self._key_header, timeout=self.timeout)
        if response.status_code != 200:
            raise classify_status(SERVICE, response.status_code, what, "PROWLARR_API_KEY")
        try:
            return response.json()
        except ValueError:
            raise TransientServiceError(SERVICE, f"{what} returned a body that is not JSON (is PROWLARR_URL "
                                                 f"Prowlarr?)") from None

    def indexers(self) -> list[str]:
        """GET /api/v1/indexer → the names of the enabled indexers (the seeding limits are set per name)."""
        items = self._get_json("/api/v1/indexer", "indexer list")
        if not isinstance(items, list):
            raise TransientServiceError(SERVICE, "indexer list returned JSON that is not a list")
        return sorted({_text(item.get("name")) for item in items
                       if isinstance(item, dict) and item.get("enable", True) and _text(item.get("name"))})

    def search(self, query: str, categories: tuple[int, ...] = (AUDIOBOOK_CATEGORY,)) -> list[Release]:
        params = [("query", query), ("type", "search"), ("limit", "100")]
        params += [("categories", str(c)) for c in categories]
        items = self._get_json("/api/v1/search", "search", params)
        if not isinstance(items, list):
            raise TransientServiceError(SERVICE, "search returned JSON that is not a list")
        return [release for release in map(parse_release, items) if release is not None]

    def fetch_release(self, link: str) -> ReleaseFile:
        """Follow a release link by hand: .torrent bytes, or the magnet a redirect (or the body) names.

        At most MAX_REDIRECTS redirects are followed; more (a loop) is a PermanentServiceError for this
        release. Errors from a host other than Prowlarr name that host as their service, so a caller can
        tell "this release is unavailable" from "Prowlarr refused our key".
        """
        url = without_api_key(link)  # the header carries the key; a stored link's apikey may be [REDACTED]
        if has_redaction_marker(url):
            raise PermanentServiceError(SERVICE, "the release link holds a redacted secret ([REDACTED]: stored "
                                                 "before links were kept whole): search again for a fresh link")
        if url.startswith("magnet:"):
            return ReleaseFile(magnet=url)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._get_release(url)
            if response.status_code not in REDIRECT_STATUSES:
                return self._release_file(url, response)
            location = response.headers.get("Location", "")
            if location.startswith("magnet:"):
                return ReleaseFile(magnet=location)
            url = _redirect_target(url, location)
        raise PermanentServiceError(SERVICE, f"release link redirected more than {MAX_REDIRECTS} times")

    def _service_for(self, url: str) -> str:
        return SERVICE if same_origin(url, self.url) else f"indexer {urlsplit(url).hostname or '?'}"

    def _get_release(self, url: str) -> requests.Response:
        """One GET, with the key only when `url` is on Prowlarr's origin (a redirect may name an indexer)."""
        service = self._service_for(url)
        headers = self._key_header if service == SERVICE else {}
        return request(self.session, service, "GET", url, headers=headers, allow_redirects=False,
                       timeout=self.timeout)

    def _release_file(self, url: str, response: requests.Response) -> ReleaseFile:
        service = self._service_for(url)
        if response.status_code != 200:
            # Prowlarr refuses a bad key with 401; a 403 on a release link is the indexer's answer it relays.
            hint = "PROWLARR_API_KEY" if service == SERVICE and response.status_code == 401 else ""
            raise classify_status(service, response.status_code, "release download", hint)
        body = response.content
        if body.startswith(b"magnet:"):
            return ReleaseFile(magnet=body.decode("utf-8", "replace").strip())
        return ReleaseFile(torrent=body)


def _redirect_target(url: str, location: str) -> str:
    target = urljoin(url, location)
    if not location or urlsplit(target).scheme.lower() not in ("http", "https"):
        raise PermanentServiceError(SERVICE, "release link redirected to an unsupported location")
    return target

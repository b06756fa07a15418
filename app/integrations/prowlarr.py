"""Prowlarr: release search and fetching a release link (reference §12.1, services.md §1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from app.integrations.errors import PermanentServiceError, TransientServiceError, classify_status
from app.integrations.http import request
from app.pipeline.ranking import Release

AUDIOBOOK_CATEGORY = 3030
SERVICE = "Prowlarr"


@dataclass(frozen=True)
class ReleaseFile:
    """What a release link gave: .torrent bytes, or a magnet URI (Prowlarr answers 301 to it)."""

    torrent: bytes | None = None
    magnet: str | None = None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse_release(item: Any) -> Release | None:
    """One search result; None for entries that cannot be used (no title, no link)."""
    if not isinstance(item, dict) or not isinstance(item.get("title"), str):
        return None
    link = item.get("downloadUrl") or item.get("magnetUrl")
    if not isinstance(link, str) or not link:
        return None
    return Release(
        title=item["title"], size=_int(item.get("size")) or 0, seeders=_int(item.get("seeders")),
        leechers=_int(item.get("leechers")), indexer=str(item.get("indexer") or ""),
        indexer_id=_int(item.get("indexerId")),
        download_url=item.get("downloadUrl") if isinstance(item.get("downloadUrl"), str) else None,
        magnet_url=item.get("magnetUrl") if isinstance(item.get("magnetUrl"), str) else None,
        info_hash=item.get("infoHash") if isinstance(item.get("infoHash"), str) else None,
        guid=str(item.get("guid") or ""), publish_date=str(item.get("publishDate") or ""),
        protocol=str(item.get("protocol") or "torrent"))


class ProwlarrClient:
    def __init__(self, url: str, api_key: str, timeout: float = 60.0):
        if not url or not api_key:
            raise PermanentServiceError(SERVICE, "PROWLARR_URL and PROWLARR_API_KEY must be set")
        self.url, self.timeout = url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.headers.update({"X-Api-Key": api_key, "Accept": "application/json",
                                     "User-Agent": "readmeabook-jobs"})

    def search(self, query: str, categories: tuple[int, ...] = (AUDIOBOOK_CATEGORY,)) -> list[Release]:
        params = [("query", query), ("type", "search"), ("limit", "100")]
        params += [("categories", str(c)) for c in categories]
        response = request(self.session, SERVICE, "GET", f"{self.url}/api/v1/search", params=params,
                           timeout=self.timeout)
        if response.status_code != 200:
            raise classify_status(SERVICE, response.status_code, "search", "PROWLARR_API_KEY")
        try:
            items = response.json()
        except ValueError:
            raise TransientServiceError(SERVICE, "search returned a body that is not JSON") from None
        if not isinstance(items, list):
            raise TransientServiceError(SERVICE, "search returned JSON that is not a list")
        return [release for release in map(parse_release, items) if release is not None]

    def fetch_release(self, link: str) -> ReleaseFile:
        """GET the release link without following redirects: .torrent bytes, or a 3xx to a magnet."""
        if link.startswith("magnet:"):
            return ReleaseFile(magnet=link)
        response = request(self.session, SERVICE, "GET", link, allow_redirects=False, timeout=self.timeout)
        if response.status_code in (301, 302, 303, 307, 308):
            location = response.headers.get("Location", "")
            if location.startswith("magnet:"):
                return ReleaseFile(magnet=location)
            if location.startswith(("http://", "https://")):
                return self.fetch_release(location) if location != link else ReleaseFile()
            raise PermanentServiceError(SERVICE, "release link redirected to an unsupported location", 502)
        if response.status_code != 200:
            raise classify_status(SERVICE, response.status_code, "release download", "PROWLARR_API_KEY")
        body = response.content
        if body.startswith(b"magnet:"):
            return ReleaseFile(magnet=body.decode().strip())
        return ReleaseFile(torrent=body)

"""Plex Media Server: identity, a section's folders, albums of a section (paged), recently added, refresh.

JSON replies (Accept: application/json); the token travels in the X-Plex-Token header."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from app.integrations.errors import PermanentServiceError, TransientServiceError, classify_status
from app.integrations.http import request_at_origin
from app.validation import clean_text

SERVICE = "Plex"
ALBUM = 9
PAGE_SIZE = 500


@dataclass(frozen=True)
class PlexItem:
    rating_key: str
    guid: str
    title: str
    author: str
    year: int | None
    duration_ms: int | None
    added_at: int | None
    summary: str
    thumb: str


def parse_item(data: Any) -> PlexItem | None:
    """One album; None without a guid or title. Text is cleaned (validation.clean_text): one title with a
    NUL or a lone surrogate must not fail the scan of a whole library."""
    if not isinstance(data, dict) or not data.get("guid") or not data.get("title"):
        return None

    def integer(value: Any) -> int | None:
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError, OverflowError):  # OverflowError: JSON 1e999 is an infinite float
            return None

    def text(value: Any) -> str:
        return clean_text(str(value)) if value else ""

    return PlexItem(rating_key=clean_text(str(data.get("ratingKey", ""))), guid=text(data["guid"]),
                    title=text(data["title"]), author=text(data.get("parentTitle") or data.get("originalTitle")),
                    year=integer(data.get("year")), duration_ms=integer(data.get("duration")),
                    added_at=integer(data.get("addedAt")), summary=text(data.get("summary")),
                    thumb=text(data.get("thumb")))


class PlexClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0):
        if not url or not token:
            raise PermanentServiceError(SERVICE, "PLEX_URL and PLEX_TOKEN must be set")
        self.url, self.timeout = url.rstrip("/"), timeout
        self.session = requests.Session()
        # the token travels in a header only, never in a URL that could be logged
        self.session.headers.update({"X-Plex-Token": token, "Accept": "application/json",
                                     "X-Plex-Client-Identifier": "readmeabook-jobs", "X-Plex-Product": "ReadMeABook"})

    def _get(self, path: str, params: dict | None = None, what: str = "request") -> dict:
        response = request_at_origin(self.session, SERVICE, "PLEX_URL", "GET", f"{self.url}{path}", params=params,
                                     timeout=self.timeout)
        if response.status_code == 404:
            raise PermanentServiceError(SERVICE, f"{what}: not found (check PLEX_LIBRARY_ID)", 404)
        if response.status_code != 200:
            raise classify_status(SERVICE, response.status_code, what, "PLEX_TOKEN")
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            raise TransientServiceError(SERVICE, f"{what}: reply is not JSON") from None
        container = body.get("MediaContainer") if isinstance(body, dict) else None
        if not isinstance(container, dict):
            raise TransientServiceError(SERVICE, f"{what}: reply has no MediaContainer")
        return container

    def identity(self) -> dict:
        return self._get("/identity", what="identity")

    def sections(self) -> list[tuple[str, str]]:
        """The library sections Plex lists: (key, title) pairs, for picking PLEX_LIBRARY_ID."""
        container = self._get("/library/sections", what="library sections")
        return [(str(d.get("key")), str(d.get("title") or d.get("key"))) for d in container.get("Directory") or []
                if isinstance(d, dict) and d.get("key") is not None]

    def section_locations(self, section: str) -> list[str]:
        """The section's folders as Plex sees them (`Location` paths of its `Directory` in /library/sections).

        A refresh with a `path` outside all of them scans nothing (Plex still answers 200)."""
        container = self._get("/library/sections", what="library sections")
        for directory in container.get("Directory") or []:
            if isinstance(directory, dict) and str(directory.get("key")) == str(section):
                return [str(location["path"]) for location in directory.get("Location") or []
                        if isinstance(location, dict) and location.get("path")]
        raise PermanentServiceError(SERVICE, f"library section {section} not found (check PLEX_LIBRARY_ID)", 404)

    def albums(self, section: str, page_size: int = PAGE_SIZE) -> Iterator[PlexItem]:
        """Every book (album) of a section, one page at a time: a huge library is never one response."""
        start = 0
        while True:
            container = self._get(f"/library/sections/{section}/all",
                                  {"type": ALBUM, "X-Plex-Container-Start": start,
                                   "X-Plex-Container-Size": page_size}, what="library listing")
            items = container.get("Metadata") or []
            for data in items:
                item = parse_item(data)
                if item is not None:
                    yield item
            start += len(items)
            total = container.get("totalSize")
            if not items or (isinstance(total, int) and start >= total) or len(items) < page_size:
                return

    def recently_added(self, section: str, count: int = 10) -> list[PlexItem]:
        container = self._get(f"/library/sections/{section}/all",
                              {"type": ALBUM, "sort": "addedAt:desc", "X-Plex-Container-Start": 0,
                               "X-Plex-Container-Size": count}, what="recently added")
        return [i for i in map(parse_item, container.get("Metadata") or []) if i is not None][:count]

    def refresh(self, section: str, path: str | None = None) -> None:
        """Ask Plex to scan the section, or only `path` (a folder as Plex sees it) when given.

        Plex answers at once and scans in the background: a new book shows up seconds to minutes later.
        """
        self._get(f"/library/sections/{section}/refresh", {"path": path} if path else None, what="refresh")

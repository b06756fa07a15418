"""A fake Plex Media Server on 127.0.0.1 following the documented JSON shapes.

401 without a valid token (header or query), /identity without one, MediaContainer/Metadata bodies,
X-Plex-Container-Start/Size paging (query or header) with offset/size/totalSize, sort=addedAt:desc.

/library/sections lists the one section with its `Location` paths: the folders as Plex sees them
(`locations`, each with the folder on this machine behind it, as a container's volume). /refresh answers
200 at once, whatever the path (as Plex does), sets the section `refreshing`, and scans a moment later
like Plex's scanner: `path=` inside a Location scans only that folder, `path=` outside every Location
scans nothing, no `path` scans every Location. A scan adds each new folder holding audio files as a book
(title = the folder, author = its parent folder: the library's {author}/{title} layout). Each authorised
refresh is recorded in `refreshes` as {"path": <the path parameter or None>, "token": <its X-Plex-Token>},
each finished scan in `scans` as {"path": …, "added": [titles]}.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlparse

from fakes.http import QuietHandler, serve


@dataclass
class FakePlex:
    token: str = "plex-test-token-1"
    section: str = "3"
    # the section's folders as Plex sees them → the folder on this machine behind each (None: nothing)
    locations: dict[str, str | None] = field(default_factory=lambda: {"/data/audiobooks": None})
    items: list[dict] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    refreshes: list[dict] = field(default_factory=list)   # {"path", "token"} of each authorised refresh
    scans: list[dict] = field(default_factory=list)       # {"path", "added"} of each finished scan
    refresh_delay: float = 0.2
    next_key: int = 1000
    scans_running: int = 0
    scanned_folders: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    host: str = "127.0.0.1"   # the address it listens on

    def album(self, title: str, author: str, guid: str | None = None, added_at: int | None = None) -> dict:
        self.next_key += 1
        key = str(self.next_key)
        return {"ratingKey": key, "key": f"/library/metadata/{key}/children", "guid": guid or f"plex://album/{key}",
                "type": "album", "title": title, "parentTitle": author, "year": 2010, "duration": 3_600_000,
                "addedAt": added_at or int(time.time()), "updatedAt": int(time.time()),
                "librarySectionID": int(self.section)}

    def start(self) -> FakePlex:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                parsed = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                fake.requests.append(parsed.path)
                if parsed.path == "/identity":
                    return self._json({"size": 0, "claimed": True, "machineIdentifier": "fake", "version": "1.40"})
                token = self.headers.get("X-Plex-Token") or query.get("X-Plex-Token")
                if token != fake.token:
                    return self._send(401, b"<html><body>401 Unauthorized</body></html>", "text/html")
                if parsed.path == "/library/sections":
                    return self._json({"size": 1, "allowSync": False, "title1": "Plex Library",
                                       "Directory": [fake.directory()]})
                prefix = f"/library/sections/{fake.section}"
                if parsed.path == f"{prefix}/all" and query.get("type") == "9":
                    return self._albums(query)
                if parsed.path == f"{prefix}/refresh":
                    path = query.get("path")
                    with fake.lock:
                        fake.refreshes.append({"path": path, "token": token})
                        fake.scans_running += 1
                    threading.Timer(fake.refresh_delay, fake.scan, (path,)).start()
                    return self._send(200, b"", "text/plain")
                return self._send(404, b"Not Found", "text/plain")

            def _albums(self, query: dict) -> None:
                items = list(fake.items)
                if query.get("sort") == "addedAt:desc":
                    items.sort(key=lambda i: i["addedAt"], reverse=True)
                start = int(query.get("X-Plex-Container-Start") or self.headers.get("X-Plex-Container-Start") or 0)
                size = int(query.get("X-Plex-Container-Size") or self.headers.get("X-Plex-Container-Size")
                           or len(items) or 1)
                page = items[start:start + size]
                self._json({"size": len(page), "totalSize": len(items), "offset": start, "viewGroup": "album",
                            "librarySectionID": int(fake.section), "Metadata": page})

            def _json(self, container: dict) -> None:
                self._send(200, json.dumps({"MediaContainer": container}).encode(), "application/json")


        self.server = serve(Handler, self.host)
        self.url = f"http://{self.host}:{self.server.server_address[1]}"
        return self

    def directory(self) -> dict:
        """The section as /library/sections lists it (a Music library: books are albums)."""
        return {"key": self.section, "type": "artist", "title": "Audiobooks", "agent": "tv.plex.agents.music",
                "scanner": "Plex Music", "language": "en-US", "refreshing": self.scans_running > 0,
                "Location": [{"id": n, "path": path} for n, path in enumerate(self.locations, start=1)]}

    def scan(self, path: str | None) -> None:
        """What Plex's scanner does after a refresh: new book folders under `path` (a folder as Plex sees
        it; None: the whole section) become albums. A path outside every Location scans nothing."""
        added = []
        for location, volume in self.locations.items():
            if volume is None:
                continue
            below = _below(path, location) if path is not None else ()
            if below is None:
                continue
            for folder in _audio_folders(Path(volume, *below)):
                with self.lock:
                    if str(folder) in self.scanned_folders:
                        continue
                    self.scanned_folders.add(str(folder))
                parents = folder.relative_to(volume).parts[:-1]
                self.items.append(self.album(folder.name, parents[-1] if parents else ""))
                added.append(folder.name)
        with self.lock:
            self.scans.append({"path": path, "added": added})
            self.scans_running -= 1

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


AUDIO_SUFFIXES = {".m4b", ".m4a", ".mp3", ".mp4", ".flac", ".ogg", ".aa", ".aax"}


def _below(path: str, folder: str) -> tuple[str, ...] | None:
    """The components of `path` below `folder` (Plex on Linux: case-sensitive), or None outside it."""
    parts, prefix = PurePosixPath(path).parts, PurePosixPath(folder).parts
    return parts[len(prefix):] if parts[:len(prefix)] == prefix else None


def _audio_folders(start: Path) -> list[Path]:
    """Folders at or under `start` that directly hold audio files, in name order."""
    found = []
    for root, dirs, files in os.walk(start):
        dirs.sort()
        if any(Path(name).suffix.lower() in AUDIO_SUFFIXES for name in files):
            found.append(Path(root))
    return found

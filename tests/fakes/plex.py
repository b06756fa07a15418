"""A fake Plex Media Server on 127.0.0.1 following the documented JSON shapes.

401 without a valid token (header or query), /identity without one, MediaContainer/Metadata bodies,
X-Plex-Container-Start/Size paging (query or header) with offset/size/totalSize, sort=addedAt:desc,
and /refresh that adds pending items after a short delay; each refresh is recorded in `refreshes`
as {"path": <the path query parameter or None>, "token": <the X-Plex-Token it carried>}.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

from fakes.http import QuietHandler, serve


@dataclass
class FakePlex:
    token: str = "plex-test-token-1"
    section: str = "3"
    items: list[dict] = field(default_factory=list)
    pending: list[dict] = field(default_factory=list)   # appear after a refresh
    requests: list[str] = field(default_factory=list)
    refreshes: list[dict] = field(default_factory=list)   # {"path", "token"} of each authorised refresh
    refresh_delay: float = 0.2
    next_key: int = 1000

    def album(self, title: str, author: str, guid: str | None = None, added_at: int | None = None) -> dict:
        self.next_key += 1
        key = str(self.next_key)
        return {"ratingKey": key, "key": f"/library/metadata/{key}/children", "guid": guid or f"plex://album/{key}",
                "type": "album", "title": title, "parentTitle": author, "year": 2010, "duration": 3_600_000,
                "addedAt": added_at or int(time.time()), "updatedAt": int(time.time()), "librarySectionID": 3}

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
                prefix = f"/library/sections/{fake.section}"
                if parsed.path == f"{prefix}/all" and query.get("type") == "9":
                    return self._albums(query)
                if parsed.path == f"{prefix}/refresh":
                    fake.refreshes.append({"path": query.get("path"), "token": token})
                    threading.Timer(fake.refresh_delay, fake._publish).start()
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


        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def _publish(self) -> None:
        self.items.extend(self.pending)
        self.pending.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""A fake Prowlarr on 127.0.0.1 that follows the documented API (/api/v1/search, /api/v1/system/status,
proxy download links).

- every /api/v1 route and every download link needs the key, read as Prowlarr's ApiKeyAuthenticationHandler
  does: an `apikey` query parameter (name in any case) wins, even when wrong and a right X-Api-Key header is
  sent; only without one is the header read. A missing or wrong key: 401, empty body, counted in
  `unauthorized_count`;
- /api/v1/search takes repeated `categories`, answers a JSON array whose null fields are omitted, with
  downloadUrl/magnetUrl as Prowlarr proxy links `/<indexerId>/download?apikey=…&link=…&file=…`;
- /api/v1/indexer lists `indexers` ({id, name, protocol, priority, enable, …}); /api/v1/indexerstatus lists
  only the blocked ones of `failing` (indexer id → disabled till, ISO 8601), as Prowlarr's
  IndexerStatusController (GetBlockedProviders) does: {id, indexerId, disabledTill, mostRecentFailure,
  initialFailure}, by indexerId only;
- /api/v1/system/status (the health check) answers `{appName, instanceName, version, …}` after
  `status_delay` seconds (a slow server, for timeouts);
- text goes out as JSON escapes: a NUL or a lone surrogate that a hostile indexer put in a title arrives as
  `\\u0000` or `\\ud800` (json.dumps writes them so), as the attack on a real stack delivered them;
- a proxy link answers .torrent bytes, a 301 to a magnet or to any URL (`redirect`), or an error (429 with
  Retry-After, 500) with a Newznab XML body.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, urlparse

from fakes.http import QuietHandler, serve


@dataclass
class FakeRelease:
    title: str
    size: int
    seeders: int | None = 10
    torrent: bytes | None = None      # served as application/x-bittorrent
    magnet: str | None = None         # served as a 301 to this magnet
    redirect: str | None = None       # served as a 301 to this URL (an indexer, another Prowlarr link)
    error: int | None = None          # served as this HTTP error
    indexer: str = "MyAudioTracker"
    indexer_id: int = 4
    leechers: int | None = 1
    info_hash: str | None = None
    link: str | None = None           # the result's downloadUrl as given (an indexer's own link, e.g. with a
    #                                   passkey) instead of a Prowlarr proxy link


@dataclass
class FakeProwlarr:
    api_key: str = "prowlarr-test-key-123"
    releases: list[FakeRelease] = field(default_factory=list)
    search_status: int = 200
    searches: list[dict] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    unauthorized_count: int = 0
    version: str = "1.24.3.4754"
    status_delay: float = 0.0
    indexers: dict[int, str] = field(default_factory=lambda: {4: "MyAudioTracker"})
    failing: dict[int, str] = field(default_factory=dict)   # indexer id → disabledTill
    indexer_status_code: int = 200                          # another: /api/v1/indexerstatus fails so
    requested: list[str] = field(default_factory=list)      # every authorised path, in order
    host: str = "127.0.0.1"   # the address it listens on (and names in its download links)

    def start(self) -> FakeProwlarr:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                parsed = urlparse(self.path)
                query = parse_qs(parsed.query, keep_blank_values=True)
                if self._presented_key(query) != fake.api_key:
                    fake.unauthorized_count += 1
                    return self._send(401, b"", "text/plain")
                fake.requested.append(parsed.path)
                if parsed.path == "/api/v1/indexer":
                    return self._indexers()
                if parsed.path == "/api/v1/indexerstatus":
                    return self._indexer_status()
                if parsed.path == "/api/v1/search":
                    return self._search(query)
                if parsed.path == "/api/v1/system/status":
                    return self._status()
                parts = parsed.path.strip("/").split("/")
                if len(parts) == 2 and parts[1] == "download":
                    return self._download(query)
                return self._send(404, b"Not Found", "text/plain")

            def _presented_key(self, query: dict) -> str | None:
                """The query parameter first (ASP.NET query names ignore case), then the header."""
                for name, values in query.items():
                    if name.lower() == "apikey":
                        return values[0]
                return self.headers.get("X-Api-Key")

            def _status(self) -> None:
                time.sleep(fake.status_delay)
                body = {"appName": "Prowlarr", "instanceName": "Prowlarr", "version": fake.version,
                        "isDebug": False, "isProduction": True, "isAdmin": False, "isUserInteractive": False,
                        "startupPath": "/app/prowlarr/bin", "appData": "/config", "osName": "debian",
                        "isDocker": True, "isLinux": True, "isOsx": False, "isWindows": False,
                        "branch": "master", "authentication": "forms", "urlBase": "", "runtimeVersion": "6.0.29"}
                self._send(200, json.dumps(body).encode(), "application/json")

            def _indexers(self) -> None:
                body = [{"id": number, "name": name, "protocol": "torrent", "priority": 25, "enable": True,
                         "implementation": "Cardigann", "appProfileId": 1, "privacy": "private", "tags": []}
                        for number, name in sorted(fake.indexers.items())]
                self._send(200, json.dumps(body).encode(), "application/json")

            def _indexer_status(self) -> None:
                if fake.indexer_status_code != 200:
                    body = json.dumps({"message": "Internal Server Error"}).encode()
                    return self._send(fake.indexer_status_code, body, "application/json")
                body = [{"id": row, "indexerId": number, "disabledTill": until,
                         "mostRecentFailure": "2026-12-06T07:00:00Z", "initialFailure": "2026-12-06T06:00:00Z"}
                        for row, (number, until) in enumerate(sorted(fake.failing.items()), start=1)]
                self._send(200, json.dumps(body).encode(), "application/json")

            def _search(self, query: dict) -> None:
                fake.searches.append(query)
                if fake.search_status != 200:
                    body = json.dumps({"message": "Search failed due to all selected indexers being unavailable"})
                    return self._send(fake.search_status, body.encode(), "application/json")
                base = f"http://{fake.host}:{fake.port}"
                results = []
                for index, release in enumerate(fake.releases):
                    link = (f"{base}/{release.indexer_id}/download"
                            f"?apikey={fake.api_key}&link={index}&file={quote(release.title, errors='surrogatepass')}")
                    item = {"guid": f"https://tracker.example/torrents/{index}", "age": 3, "size": release.size,
                            "indexerId": release.indexer_id, "indexer": release.indexer, "title": release.title,
                            "sortTitle": release.title.lower(), "publishDate": "2024-05-01T12:34:56Z",
                            "downloadUrl": release.link or link, "magnetUrl": release.link or link,
                            "protocol": "torrent",
                            "categories": [{"id": 3030, "name": "Audio/Audiobook", "subCategories": []}],
                            "seeders": release.seeders, "leechers": release.leechers, "infoHash": release.info_hash}
                    results.append({k: v for k, v in item.items() if v is not None})  # WhenWritingNull
                self._send(200, json.dumps(results).encode(), "application/json")

            def _download(self, query: dict) -> None:
                index = int((query.get("link") or ["-1"])[0])
                fake.downloads.append(str(index))
                if not 0 <= index < len(fake.releases):
                    return self._send(400, b'<error code="400" description="Invalid Prowlarr link"/>',
                                      "application/xml")
                release = fake.releases[index]
                if release.error:
                    headers = {"Retry-After": "60"} if release.error == 429 else {}
                    body = f'<error code="{release.error}" description="release unavailable"/>'.encode()
                    return self._send(release.error, body, "application/xml", headers)
                if release.magnet or release.redirect:
                    return self._send(301, b"", "text/plain", {"Location": release.magnet or release.redirect})
                self._send(200, release.torrent or b"", "application/x-bittorrent")


        self.server = serve(Handler, self.host)
        self.port = self.server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""A fake qBittorrent 5.2 WebUI: the protocol differences from 4.x.

login answers 204 (good) or 401 (bad) and sets the cookie `QBT_SID_<port>`; torrents/add answers JSON
{success_count, failure_count, pending_count, added_torrent_ids} with 200/202, or 409 when nothing was
added; states are 5.x names (stoppedUP…); expired sessions get 403.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from app.integrations.torrentfile import parse_magnet

from fakes.http import QuietHandler, serve


@dataclass
class FakeQBittorrent5:
    username: str = "admin"
    password: str = "secret-5"
    torrents: dict[str, dict] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    logins: int = 0
    last_add: dict = field(default_factory=dict)

    def start(self) -> FakeQBittorrent5:
        fake = self

        class Handler(QuietHandler):
            def _cookie(self) -> str | None:
                for part in (self.headers.get("Cookie") or "").split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == f"QBT_SID_{fake.port}":
                        return value
                return None

            def _form(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                kind = self.headers.get("Content-Type", "")
                if kind.startswith("multipart/form-data"):
                    fields: dict[str, Any] = {}
                    boundary = kind.split("boundary=")[1].encode()
                    for chunk in body.split(b"--" + boundary):
                        head, _, value = chunk.partition(b"\r\n\r\n")
                        if b'name="' in head:
                            name = head.split(b'name="')[1].split(b'"')[0].decode()
                            fields[name] = value.rstrip(b"\r\n")
                    return {k: (v.decode() if k != "torrents" else v) for k, v in fields.items()}
                return {k: v[0] for k, v in parse_qs(body.decode()).items()}

            def do_POST(self) -> None:  # noqa: N802
                path = urlparse(self.path).path
                if path == "/api/v2/auth/login":
                    form = self._form()
                    fake.logins += 1
                    if form.get("username") == fake.username and form.get("password") == fake.password:
                        sid = uuid.uuid4().hex
                        fake.sessions.add(sid)
                        return self._send(204, b"", "text/plain",
                                          {"Set-Cookie": f"QBT_SID_{fake.port}={sid}; HttpOnly; path=/"})
                    return self._send(401, b"", "text/plain")
                if self._cookie() not in fake.sessions:
                    return self._send(403, b"Forbidden", "text/plain")
                if path == "/api/v2/torrents/add":
                    form = self._form()
                    fake.last_add = form
                    info_hash = parse_magnet(form["urls"]).info_hash if form.get("urls") else "f" * 40
                    if info_hash in fake.torrents:
                        body = {"success_count": 0, "failure_count": 1, "pending_count": 0, "added_torrent_ids": []}
                        return self._send(409, json.dumps(body).encode(), "application/json")
                    fake.torrents[info_hash] = {"hash": info_hash, "name": "Book", "state": "stoppedUP",
                                                "progress": 1, "completed": 100, "size": 100,
                                                "save_path": "/dl", "content_path": "/dl/Book"}
                    body = {"success_count": 1, "failure_count": 0, "pending_count": 0,
                            "added_torrent_ids": [info_hash]}
                    return self._send(200, json.dumps(body).encode(), "application/json")
                return self._send(404, b"Not Found", "text/plain")

            def do_GET(self) -> None:  # noqa: N802
                parsed = urlparse(self.path)
                if self._cookie() not in fake.sessions:
                    return self._send(403, b"Forbidden", "text/plain")
                if parsed.path == "/api/v2/torrents/info":
                    wanted = parse_qs(parsed.query).get("hashes", [""])[0]
                    items = [t for h, t in fake.torrents.items() if h == wanted]
                    return self._send(200, json.dumps(items).encode(), "application/json")
                if parsed.path == "/api/v2/app/version":
                    return self._send(200, b"v5.2.0", "text/plain")
                return self._send(404, b"Not Found", "text/plain")

        self.server = serve(Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

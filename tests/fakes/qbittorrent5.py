"""A fake qBittorrent 5.2 WebUI: the protocol differences from 4.x.

login answers 204 (good) or 401 (bad) and sets the cookie `QBT_SID_<port>`; torrents/add answers JSON
{success_count, failure_count, pending_count, added_torrent_ids} with 200/202, or 409 when nothing was
added; states are 5.x names (stoppedUP…); expired sessions get 403.

Categories and where a torrent lands follow qBittorrent 5.2.3 (src/webui/api/torrentscontroller.cpp,
src/base/bittorrent/sessionimpl.cpp), checks in its order: createCategory answers 400 for a missing or empty
name, 409 "Incorrect category name" for an invalid one and 409 "Unable to create category" for an existing
one; torrents/add creates a missing (valid) category, trims and de-duplicates tags, and takes automatic
management when `autoTMM` says so or, unsent, when no `savepath` is given and the default mode is automatic
(`auto_tmm_by_default`, off as in qBittorrent); an automatic torrent lands in its category's save path (its
own, else the default save path joined with the category name), a manual one in `savepath` or the default.
"""
from __future__ import annotations

import json
import posixpath
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from app.integrations.torrentfile import parse_magnet, read_torrent

from fakes.http import QuietHandler, serve


@dataclass
class FakeQBittorrent5:
    username: str = "admin"
    password: str = "secret-5"
    torrents: dict[str, dict] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    logins: int = 0
    last_add: dict = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)  # name -> its own save path ("" for none)
    default_save_path: str = "/dl"
    auto_tmm_by_default: bool = False  # qBittorrent's "Default Torrent Management Mode": Manual
    categories_api: bool = True  # False: /torrents/categories answers 404, as before qBittorrent 4.1.4

    def category_save_path(self, category: str) -> str:
        """SessionImpl::categorySavePath: the category's own path, else its parent's joined with its name."""
        if not category:
            return self.default_save_path
        own = self.categories.get(category, "")
        if own:
            return own if own.startswith("/") else posixpath.join(self.default_save_path, own)
        parent, _, name = category.rpartition("/")
        return posixpath.join(self.category_save_path(parent), name) if name else self.category_save_path(parent)

    def add_category(self, name: str, save_path: str = "") -> bool:
        """SessionImpl::addCategory: refuses an invalid or existing name; creates missing parents."""
        if not _valid_category(name) or name in self.categories:
            return False
        parts = name.split("/")
        for depth in range(1, len(parts)):
            self.categories.setdefault("/".join(parts[:depth]), "")
        self.categories[name] = save_path
        return True

    def torrent_location(self, form: dict[str, Any]) -> tuple[str, str, bool]:
        """SessionImpl::initLoadTorrentParams: (category, save path, automatic management) of an add."""
        category = form.get("category", "")
        if category and category not in self.categories and not self.add_category(category):
            category = ""
        savepath = str(form.get("savepath", "")).strip()
        auto_tmm = _parse_bool(str(form.get("autoTMM", "")))
        use_category_paths = auto_tmm if auto_tmm is not None else self.auto_tmm_by_default
        automatic = auto_tmm if auto_tmm is not None else (not savepath and self.auto_tmm_by_default)
        if automatic:
            return category, self.category_save_path(category), True
        if savepath.startswith("/"):
            return category, savepath, False
        base = self.category_save_path(category) if use_category_paths else self.default_save_path
        return category, posixpath.join(base, savepath) if savepath else base, False

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
                return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}

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
                if path == "/api/v2/torrents/createCategory":
                    form = self._form()
                    if "category" not in form:
                        return self._send(400, b"Missing required parameters: category", "text/plain")
                    if not form["category"]:
                        return self._send(400, b"Category cannot be empty", "text/plain")
                    if not _valid_category(form["category"]):
                        return self._send(409, b"Incorrect category name", "text/plain")
                    if not fake.add_category(form["category"], form.get("savePath", "")):
                        return self._send(409, b"Unable to create category", "text/plain")
                    return self._send(200, b"", "text/plain")
                if path == "/api/v2/torrents/add":
                    form = self._form()
                    fake.last_add = form
                    if form.get("urls"):
                        info_hash = parse_magnet(form["urls"]).info_hash
                    else:
                        info_hash = read_torrent(form["torrents"]).info_hash
                    if info_hash in fake.torrents:
                        body = {"success_count": 0, "failure_count": 1, "pending_count": 0, "added_torrent_ids": []}
                        return self._send(409, json.dumps(body).encode(), "application/json")
                    category, save_path, automatic = fake.torrent_location(form)
                    tags = dict.fromkeys(t.strip() for t in str(form.get("tags", "")).split(",") if t.strip())
                    fake.torrents[info_hash] = {"hash": info_hash, "name": "Book", "state": "stoppedUP",
                                                "progress": 1, "completed": 100, "size": 100,
                                                "save_path": save_path, "content_path": f"{save_path}/Book",
                                                "category": category, "auto_tmm": automatic,
                                                "tags": ", ".join(sorted(tags, key=str.lower))}
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
                if parsed.path == "/api/v2/torrents/categories" and fake.categories_api:
                    listed = {name: {"name": name, "savePath": path, "download_path": None, "ratio_limit": -2,
                                     "seeding_time_limit": -2, "inactive_seeding_time_limit": -2,
                                     "share_limit_action": "Default"} for name, path in fake.categories.items()}
                    return self._send(200, json.dumps(listed).encode(), "application/json")
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


# Session::isValidCategoryName: no backslash, no leading or trailing '/', no '//'.
_CATEGORY_NAME = re.compile(r"^([^\\/]|[^\\/]([^\\/]|/(?=[^/]))*[^\\/])$")


def _valid_category(name: str) -> bool:
    return not name or bool(_CATEGORY_NAME.match(name))


def _parse_bool(raw: str) -> bool | None:
    """Utils::String::parseBool: "true"/"false" in any case, anything else is unset."""
    return {"true": True, "false": False}.get(raw.lower())

"""qBittorrent Web API v2 (4.1-5.2): login with one re-login on 403, categories, add, info, delete."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from app.integrations.errors import PermanentServiceError, TransientServiceError, classify_status
from app.integrations.http import request
from app.integrations.torrent_interface import TorrentStatus
from app.pipeline.download_state import qbittorrent_state
from app.pipeline.torrent_placement import qbittorrent_location
from app.validation import clean_text

SERVICE = "qBittorrent"


class QBittorrentClient:
    def __init__(self, url: str, username: str, password: str, timeout: float = 15.0):
        if not url:
            raise PermanentServiceError(SERVICE, "DOWNLOAD_CLIENT_URL must be set")
        self.url, self.username, self.password, self.timeout = url.rstrip("/"), username, password, timeout
        self.session = requests.Session()  # its cookie jar keeps SID (4.x) or QBT_SID_<port> (5.2)
        self._logged_in = False

    def login(self) -> None:
        response = request(self.session, SERVICE, "POST", f"{self.url}/api/v2/auth/login",
                           data={"username": self.username, "password": self.password}, timeout=self.timeout)
        if response.status_code == 204 or (response.status_code == 200 and response.text.strip() == "Ok."):
            self._logged_in = True
            return
        if response.status_code == 403:
            raise PermanentServiceError(SERVICE, "login refused: this address is banned after too many failed "
                                        "logins (check DOWNLOAD_CLIENT_USERNAME/PASSWORD, then restart "
                                        "qBittorrent)", 403)
        if response.status_code in (200, 401):
            raise PermanentServiceError(SERVICE, "login failed: check DOWNLOAD_CLIENT_USERNAME and "
                                        "DOWNLOAD_CLIENT_PASSWORD", 401)
        raise classify_status(SERVICE, response.status_code, "login")

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if not self._logged_in:
            self.login()
        response = request(self.session, SERVICE, method, f"{self.url}/api/v2/{path}", timeout=self.timeout, **kwargs)
        if response.status_code == 403:  # session expired: log in again, once (5 bad logins ban the address)
            self._logged_in = False
            self.login()
            response = request(self.session, SERVICE, method, f"{self.url}/api/v2/{path}", timeout=self.timeout,
                               **kwargs)
        return response

    def _get_json(self, path: str, what: str, absent_ok: bool = False, **kwargs: Any) -> Any:
        """GET an API path's JSON answer; None for a 404 when `absent_ok` (an endpoint older clients lack)."""
        response = self._call("GET", path, **kwargs)
        if absent_ok and response.status_code == 404:
            return None
        if response.status_code != 200:
            raise classify_status(SERVICE, response.status_code, what)
        try:
            return response.json()
        except ValueError:
            raise TransientServiceError(SERVICE, f"{what} is not JSON") from None

    def version(self) -> str:
        response = self._call("GET", "app/version")
        if response.status_code != 200:
            raise classify_status(SERVICE, response.status_code, "version")
        return response.text.strip()

    def categories(self) -> dict[str, str] | None:
        """Each category's own save path ("" when it has none); None when the client has no categories API
        (qBittorrent before 4.1.4)."""
        listed = self._get_json("torrents/categories", "categories", absent_ok=True)
        if listed is None:
            return None
        if not isinstance(listed, dict):
            raise TransientServiceError(SERVICE, "the category list is not a JSON object")
        paths: dict[str, str] = {}
        for name, entry in listed.items():
            paths[str(name)] = str(entry.get("savePath") or "") if isinstance(entry, dict) else ""
        return paths

    def category_save_path(self, category: str) -> str:
        """The category's own save path ("" for none), creating the category (without one) when it is missing."""
        known = self.categories()
        if known is None or category in known:
            return (known or {}).get(category, "")
        response = self._call("POST", "torrents/createCategory", data={"category": category, "savePath": ""})
        if response.status_code == 200:
            return ""
        if response.status_code == 409:  # another worker created it meanwhile, or the name is refused
            again = self.categories() or {}
            if category in again:
                return again[category]
            raise PermanentServiceError(SERVICE, f"qBittorrent refused to create the category {category!r} "
                                        f"({response.text.strip()[:100]}): check DOWNLOAD_CLIENT_CATEGORY", 409)
        raise classify_status(SERVICE, response.status_code, "create category")

    def add(self, *, torrent: bytes | None = None, magnet: str | None = None, category: str, tags: list[str],
            save_path: str | None = None, name: str = "release") -> str | None:
        """Add to `category` with `tags`; `save_path` is sent only when the category has no save path of its
        own (app/pipeline/torrent_placement.py). Returns the category's save path when it decided, else None."""
        if torrent is None and not magnet:
            raise ValueError("add needs .torrent bytes or a magnet")
        category_path = self.category_save_path(category) if category else ""
        data = {"category": category, "tags": ",".join(tags), "paused": "false", "stopped": "false"}
        data.update(qbittorrent_location(category_path, save_path))
        files = None
        if torrent is not None:
            files = {"torrents": (f"{name[:100]}.torrent", torrent, "application/x-bittorrent")}
        else:
            data["urls"] = magnet or ""
        response = self._call("POST", "torrents/add", data=data, files=files)
        if response.status_code in (200, 202) and response.text.strip() != "Fails.":
            return category_path if data.get("autoTMM") == "true" else None
        if response.status_code == 200 or response.status_code == 409:
            raise PermanentServiceError(SERVICE, "the torrent was refused (invalid or duplicate)", 409)
        if response.status_code == 415:
            raise PermanentServiceError(SERVICE, "the .torrent file is not valid", 415)
        raise classify_status(SERVICE, response.status_code, "add torrent")

    def get(self, info_hash: str) -> TorrentStatus | None:
        return self.statuses([info_hash]).get(info_hash.lower())

    def statuses(self, info_hashes: list[str]) -> dict[str, TorrentStatus]:
        """Every listed torrent still in the client, by lower-case info hash: one torrents/info call for all
        (`hashes` joined by `|`); none for an empty list."""
        wanted = {h.lower() for h in info_hashes if h}
        if not wanted:
            return {}
        items = self._get_json("torrents/info", "torrent info", params={"hashes": "|".join(sorted(wanted))})
        found = {}
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and str(item.get("hash", "")).lower() in wanted:
                status = _status(item)
                found[status.info_hash] = status
        return found

    def default_save_path(self) -> str:
        """The client's default save path (app/defaultSavePath): where a torrent without a save path lands."""
        response = self._call("GET", "app/defaultSavePath")
        if response.status_code != 200:
            raise classify_status(SERVICE, response.status_code, "default save path")
        return clean_text(response.text.strip())

    def snapshot(self, category: str, info_hashes: Sequence[str] = ()) -> dict[str, TorrentStatus]:
        """Every torrent of `category` in one `torrents/info` call (monitor_download's shared poll); a monitored
        torrent outside it (already in the client under another category) is looked up on its own."""
        items = self._get_json("torrents/info", "torrent info", params={"category": category})
        if not isinstance(items, list):
            raise TransientServiceError(SERVICE, "the torrent list is not a JSON list")
        statuses = (_status(item) for item in items if isinstance(item, dict) and item.get("hash"))
        return {status.info_hash: status for status in statuses}

    def remove(self, info_hash: str, delete_files: bool) -> None:
        response = self._call("POST", "torrents/delete",
                              data={"hashes": info_hash, "deleteFiles": "true" if delete_files else "false"})
        if response.status_code not in (200, 204):
            raise classify_status(SERVICE, response.status_code, "delete torrent")


def _status(item: dict) -> TorrentStatus:
    progress = float(item.get("progress") or 0)
    save_path = clean_text(str(item.get("save_path") or ""))
    name = clean_text(str(item.get("name") or ""))
    content_path = clean_text(str(item.get("content_path") or "")) or (
        f"{save_path.rstrip('/')}/{name}" if save_path else "")
    return TorrentStatus(
        info_hash=str(item.get("hash", "")).lower(), name=name,
        state=qbittorrent_state(str(item.get("state")), progress),
        raw_state=clean_text(str(item.get("state"))), progress=progress, downloaded=int(item.get("completed") or 0),
        size=max(int(item.get("size") or 0), 0), download_speed=int(item.get("dlspeed") or 0),
        eta=int(item.get("eta") or 0), content_path=content_path, seeding_seconds=int(item.get("seeding_time") or 0),
        error="", ratio=max(float(item.get("ratio") or 0), 0.0), seeders=max(int(item.get("num_seeds") or 0), 0))

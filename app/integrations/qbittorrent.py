"""qBittorrent Web API v2 (4.1-5.2): login with one re-login on 403, add, info, delete."""
from __future__ import annotations

from typing import Any

import requests

from app.integrations.errors import PermanentServiceError, TransientServiceError, classify_status
from app.integrations.http import request
from app.integrations.torrent import TorrentStatus
from app.pipeline.download_state import qbittorrent_state

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

    def version(self) -> str:
        response = self._call("GET", "app/version")
        if response.status_code != 200:
            raise classify_status(SERVICE, response.status_code, "version")
        return response.text.strip()

    def add(self, *, torrent: bytes | None = None, magnet: str | None = None, category: str, tags: list[str],
            save_path: str | None = None, name: str = "release") -> None:
        data = {"category": category, "tags": ",".join(tags), "paused": "false", "stopped": "false"}
        if save_path:
            data["savepath"] = save_path
        files = None
        if torrent is not None:
            files = {"torrents": (f"{name[:100]}.torrent", torrent, "application/x-bittorrent")}
        elif magnet:
            data["urls"] = magnet
        else:
            raise ValueError("add needs .torrent bytes or a magnet")
        response = self._call("POST", "torrents/add", data=data, files=files)
        if response.status_code in (200, 202) and response.text.strip() != "Fails.":
            return
        if response.status_code == 200 or response.status_code == 409:
            raise PermanentServiceError(SERVICE, "the torrent was refused (invalid or duplicate)", 409)
        if response.status_code == 415:
            raise PermanentServiceError(SERVICE, "the .torrent file is not valid", 415)
        raise classify_status(SERVICE, response.status_code, "add torrent")

    def get(self, info_hash: str) -> TorrentStatus | None:
        response = self._call("GET", "torrents/info", params={"hashes": info_hash})
        if response.status_code != 200:
            raise classify_status(SERVICE, response.status_code, "torrent info")
        try:
            items = response.json()
        except ValueError:
            raise TransientServiceError(SERVICE, "torrent info is not JSON") from None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and str(item.get("hash", "")).lower() == info_hash.lower():
                return _status(item)
        return None

    def remove(self, info_hash: str, delete_files: bool) -> None:
        response = self._call("POST", "torrents/delete",
                              data={"hashes": info_hash, "deleteFiles": "true" if delete_files else "false"})
        if response.status_code not in (200, 204):
            raise classify_status(SERVICE, response.status_code, "delete torrent")


def _status(item: dict) -> TorrentStatus:
    progress = float(item.get("progress") or 0)
    save_path = str(item.get("save_path") or "")
    name = str(item.get("name") or "")
    content_path = str(item.get("content_path") or "") or (f"{save_path.rstrip('/')}/{name}" if save_path else "")
    return TorrentStatus(
        info_hash=str(item.get("hash", "")).lower(), name=name,
        state=qbittorrent_state(str(item.get("state")), progress),
        raw_state=str(item.get("state")), progress=progress, downloaded=int(item.get("completed") or 0),
        size=max(int(item.get("size") or 0), 0), download_speed=int(item.get("dlspeed") or 0),
        eta=int(item.get("eta") or 0), content_path=content_path, seeding_seconds=int(item.get("seeding_time") or 0),
        error="", ratio=max(float(item.get("ratio") or 0), 0.0))

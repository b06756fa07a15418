"""Transmission RPC (2.x-4.x legacy method names): the 409 session-id handshake, add, get, remove."""
from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import requests

from app.integrations.errors import PermanentServiceError, TransientServiceError, classify_status
from app.integrations.http import request
from app.integrations.torrent_interface import TorrentStatus
from app.pipeline.download_state import transmission_state
from app.pipeline.torrent_placement import transmission_labels
from app.validation import clean_text

SERVICE = "Transmission"
FIELDS = ["hashString", "name", "status", "percentDone", "totalSize", "sizeWhenDone", "leftUntilDone",
          "downloadedEver", "rateDownload", "eta", "downloadDir", "error", "errorString", "metadataPercentComplete",
          "secondsSeeding", "uploadRatio", "labels", "peersSendingToUs"]
# uploadRatio's special values (libtransmission TR_RATIO_NA, TR_RATIO_INF): nothing transferred; uploaded
# without having downloaded (data that was already complete on disk)
_RATIO_NA, _RATIO_INF = -1, -2


class TransmissionClient:
    def __init__(self, url: str, username: str = "", password: str = "", timeout: float = 15.0):
        if not url:
            raise PermanentServiceError(SERVICE, "DOWNLOAD_CLIENT_URL must be set")
        base = url.rstrip("/")
        self.rpc_url = base if base.endswith("/transmission/rpc") else f"{base}/transmission/rpc"
        self.timeout = timeout
        self.session = requests.Session()
        if username or password:
            self.session.auth = (username, password)  # sent up front: unauthenticated tries count toward a lockout

    def call(self, method: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"method": method, "arguments": arguments or {}}
        for _ in range(2):
            response = request(self.session, SERVICE, "POST", self.rpc_url, json=body, timeout=self.timeout)
            if response.status_code == 409 and "X-Transmission-Session-Id" in response.headers:
                self.session.headers["X-Transmission-Session-Id"] = response.headers["X-Transmission-Session-Id"]
                continue
            break
        if response.status_code == 401:
            raise PermanentServiceError(SERVICE, "RPC login failed: check DOWNLOAD_CLIENT_USERNAME and "
                                        "DOWNLOAD_CLIENT_PASSWORD", 401)
        if response.status_code != 200:
            raise classify_status(SERVICE, response.status_code, method)
        try:
            reply = response.json()
        except ValueError:
            raise TransientServiceError(SERVICE, f"{method} reply is not JSON") from None
        if reply.get("result") != "success":
            raise PermanentServiceError(SERVICE, f"{method} failed: {clean_text(str(reply.get('result')))[:200]}")
        return reply.get("arguments") or {}

    def version(self) -> str:
        return str(self.call("session-get").get("version", ""))

    def add(self, *, torrent: bytes | None = None, magnet: str | None = None, category: str, tags: list[str],
            save_path: str | None = None, name: str = "release") -> str | None:
        arguments: dict[str, Any] = {"paused": False}
        if torrent is not None:
            arguments["metainfo"] = base64.b64encode(torrent).decode()
        elif magnet:
            arguments["filename"] = magnet
        else:
            raise ValueError("add needs .torrent bytes or a magnet")
        if save_path:
            arguments["download-dir"] = save_path
        added = self.call("torrent-add", arguments)
        entry = added.get("torrent-added") or added.get("torrent-duplicate") or {}
        if entry.get("hashString"):
            # labels in torrent-add need 4.0+; torrent-set works from 3.00. Seeding limits are ours, not the daemon's.
            self.call("torrent-set", {"ids": [entry["hashString"]], "labels": transmission_labels(category, tags),
                                      "seedRatioMode": 2, "seedIdleMode": 2})
        return None  # download-dir is always ours: Transmission has no folders of its own per label

    def get(self, info_hash: str) -> TorrentStatus | None:
        return self.statuses([info_hash]).get(info_hash.lower())

    def statuses(self, info_hashes: list[str]) -> dict[str, TorrentStatus]:
        """Every listed torrent still in the client, by lower-case info hash: one torrent-get with all the
        ids; none for an empty list."""
        wanted = {h.lower() for h in info_hashes if h}
        if not wanted:
            return {}
        torrents = self.call("torrent-get", {"ids": sorted(wanted), "fields": FIELDS}).get("torrents") or []
        found = {}
        for item in torrents:
            if str(item.get("hashString", "")).lower() in wanted:
                status = _status(item)
                found[status.info_hash] = status
        return found

    def default_save_path(self) -> str:
        """The daemon's download-dir (session-get): where a torrent added without one lands."""
        return clean_text(str(self.call("session-get").get("download-dir") or ""))

    def snapshot(self, category: str, info_hashes: Sequence[str]) -> dict[str, TorrentStatus]:
        """The monitored torrents in one `torrent-get` with their hashes as ids (monitor_download's shared poll);
        `category` is not asked (labels cannot be filtered on in RPC)."""
        if not info_hashes:
            return {}
        torrents = self.call("torrent-get", {"ids": list(info_hashes), "fields": FIELDS}).get("torrents") or []
        statuses = (_status(item) for item in torrents if isinstance(item, dict) and item.get("hashString"))
        return {status.info_hash: status for status in statuses}

    def remove(self, info_hash: str, delete_files: bool) -> None:
        self.call("torrent-remove", {"ids": [info_hash], "delete-local-data": delete_files})


def _status(item: dict) -> TorrentStatus:
    percent = float(item.get("percentDone") or 0)
    size = int(item.get("sizeWhenDone") or item.get("totalSize") or 0)
    directory, name = clean_text(str(item.get("downloadDir") or "")), clean_text(str(item.get("name") or ""))
    return TorrentStatus(
        info_hash=str(item.get("hashString", "")).lower(), name=name,
        state=transmission_state(int(item.get("status") or 0), percent, int(item.get("error") or 0),
                                 float(item.get("metadataPercentComplete", 1) or 0)),
        raw_state=f"status {item.get('status')}", progress=percent,
        downloaded=max(size - int(item.get("leftUntilDone") or 0), 0) if size else int(item.get("downloadedEver") or 0),
        size=size, download_speed=int(item.get("rateDownload") or 0), eta=int(item.get("eta") or 0),
        content_path=f"{directory.rstrip('/')}/{name}" if directory else name,
        seeding_seconds=int(item.get("secondsSeeding") or 0), error=clean_text(str(item.get("errorString") or "")),
        ratio=_ratio(item.get("uploadRatio")), seeders=max(int(item.get("peersSendingToUs") or 0), 0))


def _ratio(raw: Any) -> float:
    value = float(raw or 0)
    if value == _RATIO_INF:
        return float("inf")
    return max(value, 0.0)

"""An in-memory download client implementing app.integrations.torrent.DownloadClient (unit tests, benchmarks)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from app.integrations.errors import TransientServiceError
from app.integrations.torrent_interface import TorrentStatus
from app.integrations.torrentfile import parse_magnet, read_torrent
from app.pipeline.download_state import DownloadState


@dataclass
class FakeDownloadClient:
    torrents: dict
    calls: list
    down: bool = False

    def __init__(self):
        self.torrents, self.calls, self.down, self._lock = {}, [], False, threading.Lock()

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.down:
            raise TransientServiceError("Fake", f"{call}: cannot connect")

    def add(self, *, torrent=None, magnet=None, category, tags, save_path=None, name="release") -> None:
        self._check("add")
        info_hash = read_torrent(torrent).info_hash if torrent else parse_magnet(magnet).info_hash
        self.put(info_hash, name=name)

    def put(self, info_hash: str, *, name: str = "book", progress: float = 0.0, state=DownloadState.DOWNLOADING,
            seeding_seconds: int = 0, size: int = 100) -> None:
        with self._lock:
            self.torrents[info_hash] = TorrentStatus(
                info_hash=info_hash, name=name, state=state, raw_state=state.value, progress=progress,
                downloaded=int(size * progress), size=size, download_speed=0, eta=0,
                content_path=f"/downloads/{name}", seeding_seconds=seeding_seconds, error="")

    def set(self, info_hash: str, **changes) -> None:
        with self._lock:
            self.torrents[info_hash] = replace(self.torrents[info_hash], **changes)

    def get(self, info_hash: str):
        self._check("get")
        return self.torrents.get(info_hash)

    def statuses(self, info_hashes: list[str]) -> dict:
        self._check("statuses")
        return {h: self.torrents[h] for h in info_hashes if h in self.torrents}

    def default_save_path(self) -> str:
        self._check("default_save_path")
        return "/downloads"

    def snapshot(self, category: str, info_hashes) -> dict:
        self._check("snapshot")
        with self._lock:
            return dict(self.torrents)

    def remove(self, info_hash: str, delete_files: bool) -> None:
        self._check(f"remove:{delete_files}")
        self.torrents.pop(info_hash, None)

    def version(self) -> str:
        return "fake 1.0"

"""The download-client interface shared by qBittorrent, Transmission and the test fakes. The factory that picks the
configured client is app/integrations/torrent.py, above the clients: they import this module, never the factory."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.pipeline.download_state import DownloadState


@dataclass(frozen=True)
class TorrentStatus:
    info_hash: str
    name: str
    state: DownloadState
    raw_state: str
    progress: float          # 0..1
    downloaded: int          # bytes
    size: int                # bytes
    download_speed: int      # bytes/s
    eta: int
    content_path: str
    seeding_seconds: int
    error: str
    # uploaded / downloaded as the client reports it (qBittorrent `ratio`, Transmission `uploadRatio`): what an
    # indexer's INDEXER_SEEDING_RATIO is compared with; 0 when the client cannot say
    ratio: float = 0.0
    seeders: int = 0         # seeds connected now (qBittorrent `num_seeds`, Transmission `peersSendingToUs`)


class DownloadClient(Protocol):
    def add(self, *, torrent: bytes | None = None, magnet: str | None = None, category: str, tags: list[str],
            save_path: str | None = None, name: str = "release") -> str | None:
        """Add the torrent; returns the folder (as the client names it) when the client chose it instead of
        `save_path` (a qBittorrent category's own save path), else None."""

    def get(self, info_hash: str) -> TorrentStatus | None: ...

    def statuses(self, info_hashes: list[str]) -> dict[str, TorrentStatus]:
        """Every listed torrent still in the client, by lower-case info hash, in one call (the Activity page)."""

    def default_save_path(self) -> str:
        """Where the client saves a torrent added without a save path (the health check's question)."""

    def snapshot(self, category: str, info_hashes: Sequence[str]) -> dict[str, TorrentStatus]:
        """Every download the project monitors, in one call, by lower-case info hash: qBittorrent answers for its
        `category` (the project's torrents), Transmission for `info_hashes` (it has no categories)."""

    def remove(self, info_hash: str, delete_files: bool) -> None: ...

    def version(self) -> str: ...

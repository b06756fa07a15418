"""A download client whose torrents live in Redis, so a test and its worker subprocesses see the same ones
(the fencing tests freeze a worker inside a call of it). Statuses are stored as the snapshot stores them."""
from __future__ import annotations

from app.integrations.torrent_snapshot import decode, encode
from app.integrations.torrentfile import parse_magnet, read_torrent

TORRENTS = "test:shared-client:torrents"
REMOVED = "test:shared-client:removed"
CALLS = "test:shared-client:calls"


class SharedDownloadClient:
    def __init__(self, connection, before_return=None):
        # before_return(call): runs after the answer is read and before it is returned (the freeze point)
        self.connection, self.before_return = connection, before_return or (lambda call: None)

    def put(self, status) -> None:
        self.connection.hset(TORRENTS, status.info_hash.lower(), encode(status))

    def _call(self, name: str) -> None:
        self.connection.rpush(CALLS, name)

    def get(self, info_hash: str):
        self._call("get")
        raw = self.connection.hget(TORRENTS, info_hash.lower())
        status = decode(raw) if raw is not None else None
        self.before_return("get")
        return status

    def snapshot(self, category: str, info_hashes) -> dict:
        self._call("snapshot")
        statuses = {key.decode(): decode(raw) for key, raw in self.connection.hgetall(TORRENTS).items()}
        self.before_return("snapshot")
        return statuses

    def add(self, *, torrent=None, magnet=None, category, tags, save_path=None, name="release") -> None:
        from app.integrations.torrent_interface import TorrentStatus
        from app.pipeline.download_state import DownloadState

        self._call("add")
        info_hash = read_torrent(torrent).info_hash if torrent else parse_magnet(magnet).info_hash
        self.put(TorrentStatus(info_hash, name, DownloadState.DOWNLOADING, "downloading", 0.0, 0, 100, 0, 0,
                               f"/downloads/{name}", 0, ""))
        self.before_return("add")

    def remove(self, info_hash: str, delete_files: bool) -> None:
        self._call("remove")
        self.connection.rpush(REMOVED, info_hash.lower())
        self.connection.hdel(TORRENTS, info_hash.lower())

    def version(self) -> str:
        return "shared 1.0"

"""Audiobook torrents for the fault scenarios: content on disk, its .torrent, and what MEDIA_DIR must hold.

A book is either already in DOWNLOAD_DIR when its torrent is added (qBittorrent finds it complete by
hash check, as in tests/end_to_end/test_end_to_end.py), or "arrives later": its files wait in a staging folder,
the torrent sits at 0 % (no peers on loopback) while monitor_download polls it, and `arrive()` puts
the files in place and asks qBittorrent to recheck, which completes the download.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from app.integrations.torrentfile import make_torrent, read_torrent

from fakes.prowlarr import FakeRelease

CHUNK = 1 << 20


@dataclass
class Book:
    title: str
    author: str
    source: Path                       # the torrent's content folder (staging or DOWNLOAD_DIR)
    download_dir: Path
    torrent: bytes
    digests: dict[str, str] = field(default_factory=dict)   # name in MEDIA_DIR -> sha256 of the content

    @property
    def folder_name(self) -> str:
        return self.source.name

    @property
    def info_hash(self) -> str:
        return read_torrent(self.torrent).info_hash

    @property
    def release_title(self) -> str:
        return f"{self.author} - {self.title} (Unabridged) [M4B]"

    def release(self, seeders: int = 30, title: str | None = None) -> FakeRelease:
        return FakeRelease(title or self.release_title, 700 * 2**20, seeders=seeders, torrent=self.torrent)

    def target(self, media_dir: Path) -> Path:
        """Where organize_files puts the book with the default template {author}/{title}."""
        return media_dir / self.author / self.title

    @property
    def present(self) -> bool:
        return self.source.parent == self.download_dir

    def arrive(self, qbittorrent) -> None:
        """The download "finishes": the files land in DOWNLOAD_DIR and qBittorrent rechecks the torrent."""
        if not self.present:
            destination = self.download_dir / self.folder_name
            shutil.copytree(self.source, destination, dirs_exist_ok=True)
            self.source = destination
        qbittorrent.recheck(self.info_hash)


def _write_random(path: Path, size: int) -> str:
    """`size` bytes that never repeat within a file (a random block, stamped with its index); its sha256."""
    digest = hashlib.sha256()
    block = os.urandom(CHUNK)
    with open(path, "wb") as handle:
        written, index = 0, 0
        while written < size:
            piece = (index.to_bytes(8, "big") + block[8:])[:size - written]
            handle.write(piece)
            digest.update(piece)
            written += len(piece)
            index += 1
    return digest.hexdigest()


def make_book(title: str, author: str, download_dir: Path, staging_dir: Path, *, present: bool = True,
              audio_sizes: tuple[int, ...] = (300_000, 200_000)) -> Book:
    """A folder `<author> - <title> [M4B]` with Part N.m4b files of the given sizes and a cover."""
    parent = download_dir if present else staging_dir
    folder = parent / f"{author} - {title} [M4B]"
    folder.mkdir(parents=True)
    digests = {}
    for number, size in enumerate(audio_sizes, start=1):
        name = f"Part {number}.m4b"
        digests[name] = _write_random(folder / name, size)
    cover = b"\xff\xd8\xff fault-suite cover " + title.encode()
    (folder / "cover.jpg").write_bytes(cover)
    digests["cover.jpg"] = hashlib.sha256(cover).hexdigest()
    piece_length = 4 * CHUNK if sum(audio_sizes) > 64 * CHUNK else 256 * 1024
    return Book(title, author, folder, download_dir, make_torrent(folder, piece_length=piece_length), digests)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 * CHUNK):
            digest.update(chunk)
    return digest.hexdigest()

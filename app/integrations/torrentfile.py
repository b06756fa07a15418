"""Bencode, info-hashes of .torrent files, magnet URIs, and a small torrent maker (tests, benches)."""
from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse


class TorrentFileError(ValueError):
    """Bytes that are not a valid .torrent, or a magnet URI without a usable info-hash."""


def bencode(value: object) -> bytes:
    if isinstance(value, bool):
        raise TorrentFileError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TorrentFileError(f"cannot bencode {type(value).__name__}")


def _decode(data: bytes, index: int) -> tuple[object, int]:
    if index >= len(data):
        raise TorrentFileError("truncated data")
    lead = data[index:index + 1]
    if lead == b"i":
        end = data.index(b"e", index)
        return int(data[index + 1:end]), end + 1
    if lead == b"l":
        index += 1
        items = []
        while data[index:index + 1] != b"e":
            item, index = _decode(data, index)
            items.append(item)
        return items, index + 1
    if lead == b"d":
        index += 1
        result = {}
        while data[index:index + 1] != b"e":
            key, index = _decode(data, index)
            if not isinstance(key, bytes):
                raise TorrentFileError("dictionary key is not a string")
            result[key], index = _decode(data, index)
        return result, index + 1
    if lead.isdigit():
        colon = data.index(b":", index)
        length = int(data[index:colon])
        start = colon + 1
        if start + length > len(data):
            raise TorrentFileError("truncated string")
        return data[start:start + length], start + length
    raise TorrentFileError(f"unexpected byte {lead!r} at {index}")


def bdecode(data: bytes) -> object:
    try:
        value, end = _decode(data, 0)
    except (ValueError, IndexError) as exc:
        raise TorrentFileError(f"not a valid torrent file: {exc}") from None
    if end != len(data):
        raise TorrentFileError("trailing data after the torrent dictionary")
    return value


def _info_span(data: bytes) -> tuple[int, int]:
    """Start and end of the raw `info` value, so the hash is over the original bytes."""
    if data[:1] != b"d":
        raise TorrentFileError("a torrent file must be a dictionary")
    index = 1
    while data[index:index + 1] != b"e":
        key, index = _decode(data, index)
        start = index
        _, index = _decode(data, index)
        if key == b"info":
            return start, index
    raise TorrentFileError("the torrent has no info dictionary")


@dataclass(frozen=True)
class TorrentMeta:
    info_hash: str
    name: str
    total_size: int


def read_torrent(data: bytes) -> TorrentMeta:
    """Info-hash (v1, lower-case hex), name and size of .torrent bytes."""
    meta = bdecode(data)
    if not isinstance(meta, dict) or not isinstance(meta.get(b"info"), dict):
        raise TorrentFileError("not a valid torrent file: no info dictionary")
    start, end = _info_span(data)
    info = meta[b"info"]
    name = info.get(b"name", b"")
    size = info.get(b"length") or sum(int(f.get(b"length", 0)) for f in info.get(b"files", []) if isinstance(f, dict))
    return TorrentMeta(hashlib.sha1(data[start:end]).hexdigest(), name.decode("utf-8", "replace"), int(size or 0))


_BTIH = re.compile(r"^urn:btih:([0-9a-fA-F]{40}|[A-Za-z2-7]{32})$")


@dataclass(frozen=True)
class Magnet:
    info_hash: str
    name: str
    uri: str


def parse_magnet(uri: str) -> Magnet:
    parsed = urlparse(uri)
    if parsed.scheme != "magnet":
        raise TorrentFileError("not a magnet URI")
    query = parse_qs(parsed.query)
    for xt in query.get("xt", []):
        match = _BTIH.match(xt)
        if match:
            raw = match.group(1)
            info_hash = raw.lower() if len(raw) == 40 else base64.b32decode(raw.upper()).hex()
            return Magnet(info_hash, (query.get("dn") or [""])[0], uri)
    raise TorrentFileError("magnet URI has no urn:btih info-hash")


def magnet_uri(info_hash: str, name: str) -> str:
    return f"magnet:?xt=urn:btih:{info_hash}&dn={quote(name)}"


def make_torrent(path: Path, piece_length: int = 256 * 1024) -> bytes:
    """A v1 .torrent for a file or folder (no tracker), for tests and benchmarks."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    pieces, buffer = [], b""
    for file in files:
        with open(file, "rb") as handle:
            while chunk := handle.read(piece_length):
                buffer += chunk
                while len(buffer) >= piece_length:
                    pieces.append(hashlib.sha1(buffer[:piece_length]).digest())
                    buffer = buffer[piece_length:]
    if buffer or not pieces:
        pieces.append(hashlib.sha1(buffer).digest())
    info: dict = {"name": path.name, "piece length": piece_length, "pieces": b"".join(pieces)}
    if path.is_file():
        info["length"] = path.stat().st_size
    else:
        info["files"] = [{"length": f.stat().st_size, "path": list(f.relative_to(path).parts)} for f in files]
    return bencode({"info": info, "created by": "readmeabook-jobs tests", "creation date": int(os.path.getmtime(path))})

"""Bencode, info-hashes of .torrent files, magnet URIs, and a small torrent maker (tests, benches)."""
from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

from app.validation import clean_text


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


# Real torrents nest five deep (root, info, files, one file, its path); this bound only stops hostile
# input from exhausting the stack.
MAX_DEPTH = 64
# BEP 3: no leading zeros, no "-0"; 20 digits hold any 64-bit value and keep int() away from huge strings.
_INTEGER = re.compile(rb"i(0|-?[1-9][0-9]{0,19})e")
_LENGTH = re.compile(rb"(0|[1-9][0-9]{0,15}):")


class _Decoder:
    """Strict bencode reader. Every malformed input ends in TorrentFileError, never another exception.

    It also notes where the top-level `info` value lies, so the info-hash is taken over the original bytes.
    """

    def __init__(self, data: bytes):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TorrentFileError(f"not a valid torrent file: {type(data).__name__}, not bytes")
        self.data = bytes(data)
        self.info_span: tuple[int, int] | None = None

    def document(self) -> object:
        try:
            value, end = self.value(0, 0)
            if end != len(self.data):
                raise TorrentFileError(f"trailing data at offset {end}")
        except TorrentFileError as exc:
            raise TorrentFileError(f"not a valid torrent file: {exc}") from None
        return value

    def value(self, index: int, depth: int) -> tuple[object, int]:
        if depth > MAX_DEPTH:
            raise TorrentFileError(f"nested deeper than {MAX_DEPTH} levels")
        lead = self.data[index:index + 1]
        if not lead:
            raise TorrentFileError("truncated data")
        if lead == b"i":
            return self.integer(index)
        if lead == b"l":
            return self.list(index, depth)
        if lead == b"d":
            return self.dictionary(index, depth)
        if lead.isdigit():
            return self.string(index)
        raise TorrentFileError(f"unexpected byte {lead!r} at offset {index}")

    def integer(self, index: int) -> tuple[int, int]:
        match = _INTEGER.match(self.data, index)
        if match is None:
            raise TorrentFileError(f"malformed integer at offset {index}")
        return int(match.group(1)), match.end()

    def string(self, index: int) -> tuple[bytes, int]:
        match = _LENGTH.match(self.data, index)
        if match is None:
            raise TorrentFileError(f"malformed string length at offset {index}")
        start = match.end()
        end = start + int(match.group(1))
        if end > len(self.data):
            raise TorrentFileError(f"truncated string at offset {index}")
        return self.data[start:end], end

    def list(self, index: int, depth: int) -> tuple[list, int]:
        items, index = [], index + 1
        while self.data[index:index + 1] != b"e":
            item, index = self.value(index, depth + 1)
            items.append(item)
        return items, index + 1

    def dictionary(self, index: int, depth: int) -> tuple[dict, int]:
        result: dict[bytes, object] = {}
        index += 1
        while self.data[index:index + 1] != b"e":
            if not self.data[index:index + 1].isdigit():
                raise TorrentFileError(f"dictionary key at offset {index} is not a string")
            key, index = self.string(index)
            if key in result:
                raise TorrentFileError(f"duplicate dictionary key {key[:40]!r}")
            start = index
            result[key], index = self.value(index, depth + 1)
            if depth == 0 and key == b"info":
                self.info_span = (start, index)
        return result, index + 1


def bdecode(data: bytes) -> object:
    return _Decoder(data).document()


@dataclass(frozen=True)
class TorrentMeta:
    info_hash: str
    name: str
    total_size: int


def read_torrent(data: bytes) -> TorrentMeta:
    """Info-hash (v1, lower-case hex), name and size of .torrent bytes.

    The info dictionary is checked for what BEP 3 requires (name, piece length, pieces, and one of
    length/files, each of the right type); anything else is a TorrentFileError.
    """
    decoder = _Decoder(data)
    meta = decoder.document()
    if not isinstance(meta, dict):
        raise TorrentFileError("not a valid torrent file: a torrent file must be a dictionary")
    info = meta.get(b"info")
    if not isinstance(info, dict) or decoder.info_span is None:
        raise TorrentFileError("not a valid torrent file: no info dictionary")
    name = _name(info)
    _check_pieces(info)
    size = _total_size(info)
    start, end = decoder.info_span
    return TorrentMeta(hashlib.sha1(decoder.data[start:end]).hexdigest(), name, size)


def _name(info: dict) -> str:
    name = info.get(b"name")
    if not isinstance(name, bytes):
        raise TorrentFileError("not a valid torrent file: the info name is missing or not a string")
    return clean_text(name.decode("utf-8", "replace"))  # a NUL in a name from an indexer cannot be stored


def _check_pieces(info: dict) -> None:
    piece_length, pieces = info.get(b"piece length"), info.get(b"pieces")
    if not isinstance(piece_length, int) or piece_length <= 0:
        raise TorrentFileError("not a valid torrent file: piece length is missing or not a positive integer")
    if not isinstance(pieces, bytes) or not pieces or len(pieces) % 20:
        # v2-only torrents have no `pieces`; their id is not a SHA-1 info-hash, so they are refused too
        raise TorrentFileError("not a valid torrent file: pieces are missing or not a multiple of 20 bytes")


def _total_size(info: dict) -> int:
    length, files = info.get(b"length"), info.get(b"files")
    if (length is None) == (files is None):
        raise TorrentFileError("not a valid torrent file: the info needs exactly one of length and files")
    if files is None:
        return _file_length(length)
    if not isinstance(files, list) or not files:
        raise TorrentFileError("not a valid torrent file: files is not a non-empty list")
    total = 0
    for entry in files:
        if not isinstance(entry, dict):
            raise TorrentFileError("not a valid torrent file: a files entry is not a dictionary")
        path = entry.get(b"path")
        if not isinstance(path, list) or not path or not all(isinstance(part, bytes) for part in path):
            raise TorrentFileError("not a valid torrent file: a file path is not a non-empty list of strings")
        total += _file_length(entry.get(b"length"))
    return total


def _file_length(value: object) -> int:
    if not isinstance(value, int) or value < 0:
        raise TorrentFileError("not a valid torrent file: a length is missing or not a non-negative integer")
    return value


_BTIH = re.compile(r"^urn:btih:([0-9a-fA-F]{40}|[A-Za-z2-7]{32})$")


@dataclass(frozen=True)
class Magnet:
    info_hash: str
    name: str
    uri: str


def parse_magnet(uri: str) -> Magnet:
    if not isinstance(uri, str):
        raise TorrentFileError("not a magnet URI")
    try:
        parsed = urlparse(uri)
    except ValueError:  # e.g. an unbalanced "[" read as an IPv6 host
        raise TorrentFileError("not a magnet URI") from None
    if parsed.scheme != "magnet":
        raise TorrentFileError("not a magnet URI")
    query = parse_qs(parsed.query)
    for xt in query.get("xt", []):
        match = _BTIH.match(xt)
        if match:
            raw = match.group(1)
            info_hash = raw.lower() if len(raw) == 40 else base64.b32decode(raw.upper()).hex()
            return Magnet(info_hash, clean_text((query.get("dn") or [""])[0]), uri)
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

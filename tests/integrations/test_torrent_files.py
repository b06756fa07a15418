"""Reading .torrent files and magnets (app/integrations/torrentfile.py): well-formed variants are read, every
malformed file is a TorrentFileError (by table and by mutation), and magnets in hex and base32."""
from __future__ import annotations

import base64
import random

import pytest

from app.integrations.torrentfile import (
    TorrentFileError,
    bdecode,
    bencode,
    magnet_uri,
    make_torrent,
    parse_magnet,
    read_torrent,
)

MiB = 1024 * 1024
HASH = "0123456789abcdef0123456789abcdef01234567"


# --- made torrents and magnets -----------------------------------------------------------------------

def test_info_hash_of_a_made_torrent_and_round_trip(tmp_path):
    folder = tmp_path / "Author - Book"
    folder.mkdir()
    (folder / "a.mp3").write_bytes(b"x" * 300_000)
    (folder / "b.mp3").write_bytes(b"y" * 10)
    data = make_torrent(folder)
    meta = read_torrent(data)
    assert meta.name == "Author - Book" and meta.total_size == 300_010 and len(meta.info_hash) == 40
    assert bencode(bdecode(data)) == data


@pytest.mark.parametrize("garbage", [b"", b"not a torrent", b"d4:infoi1ee", b"d4:info", b"l1:ae"])
def test_garbage_is_not_a_torrent(garbage):
    with pytest.raises(TorrentFileError):
        read_torrent(garbage)


def test_magnets_in_hex_and_base32():
    hex_hash = "0123456789abcdef0123456789abcdef01234567"
    assert parse_magnet(magnet_uri(hex_hash, "A B")).info_hash == hex_hash
    b32 = base64.b32encode(bytes.fromhex(hex_hash)).decode()
    assert parse_magnet(f"magnet:?xt=urn:btih:{b32}&dn=x").info_hash == hex_hash
    assert parse_magnet(f"magnet:?xt=urn:btih:{hex_hash.upper()}").name == ""
    for bad in ("http://x", "magnet:?dn=nohash", "magnet:?xt=urn:btih:123"):
        with pytest.raises(TorrentFileError):
            parse_magnet(bad)


# --- malformed .torrent files ---------------------------------------------------------------------

def _info(**changes) -> dict:
    info = {"name": "Book", "piece length": 262144, "pieces": b"p" * 20, "length": 5}
    info.update(changes)
    return {key: value for key, value in info.items() if value is not None}


def _torrent(**changes) -> bytes:
    return bencode({"info": _info(**changes)})


def _multi_file(files) -> bytes:
    return _torrent(length=None, files=files)


MALFORMED = {
    "name is an int": b"d4:infod4:namei5eee",
    "empty": b"",
    "not bencode": b"not a torrent",
    "a list at the top": b"l1:ae",
    "a string at the top": b"4:spam",
    "no info": bencode({"announce": "http://t"}),
    "info is an int": b"d4:infoi1ee",
    "info is a list": bencode({"info": [1, 2]}),
    "info is a string": bencode({"info": "x"}),
    "truncated after info key": b"d4:info",
    "truncated inside info": _torrent()[:-5],
    "truncated string": b"d4:infod4:name10:abce",
    "no closing e": _torrent()[:-1],
    "trailing garbage": _torrent() + b"junk",
    "two documents": _torrent() + _torrent(),
    "name missing": _torrent(name=None),
    "name is a list": _torrent(name=["a"]),
    "name is a dict": _torrent(name={"a": 1}),
    "length is a string": _torrent(length="5"),
    "length is negative": _torrent(length=-1),
    "length is a list": _torrent(length=[5]),
    "length and files both": _torrent(files=[{"length": 1, "path": ["a"]}]),
    "neither length nor files": _torrent(length=None),
    "pieces missing": _torrent(pieces=None),
    "pieces is an int": _torrent(pieces=20),
    "pieces not a multiple of 20": _torrent(pieces=b"p" * 19),
    "pieces empty": _torrent(pieces=b""),
    "piece length zero": _torrent(**{"piece length": 0}),
    "piece length a string": _torrent(**{"piece length": "262144"}),
    "files is a dict": _multi_file({"length": 1}),
    "files is empty": _multi_file([]),
    "files entry is an int": _multi_file([7]),
    "file length missing": _multi_file([{"path": ["a"]}]),
    "file length a string": _multi_file([{"length": "1", "path": ["a"]}]),
    "file path missing": _multi_file([{"length": 1}]),
    "file path a string": _multi_file([{"length": 1, "path": "a"}]),
    "file path holds an int": _multi_file([{"length": 1, "path": ["a", 2]}]),
    "file path empty": _multi_file([{"length": 1, "path": []}]),
    "integer with no digits": b"d4:infod6:lengthiee",
    "integer not a number": b"d4:infod6:lengthixyzee",
    "integer with a leading zero": b"d4:infod6:lengthi05ee",
    "minus zero": b"i-0e",
    "integer with spaces": b"i 5e",
    "integer with underscores": b"i1_0e",
    "integer unterminated": b"i5",
    "integer with 5000 digits": b"i" + b"9" * 5000 + b"e",
    "string length with a leading zero": b"d4:infod4:name01:xee",
    "string length huge": b"d4:info99999999999999999:x",
    "string length with 5000 digits": b"9" * 5000 + b":x",
    "key is an int": b"di1e1:xe",
    "key is a list": b"dl1:ae1:xe",
    "duplicate key": b"d4:infod4:name1:a4:name1:bee",
    "unexpected byte": b"d4:infox",
    "deep lists": b"l" * 100_000 + b"e" * 100_000,
    "deep dicts": b"d1:a" * 50_000 + b"i0e" + b"e" * 50_000,
    "deep inside info": b"d4:infod4:name" + b"l" * 5000 + b"e" * 5000 + b"ee",
}


@pytest.mark.parametrize("data", list(MALFORMED.values()), ids=list(MALFORMED))
def test_every_malformed_torrent_is_a_torrent_file_error(data):
    with pytest.raises(TorrentFileError, match="not a valid torrent file"):
        read_torrent(data)


def test_non_bytes_are_a_torrent_file_error():
    for value in (None, "d4:infoe", 5):
        with pytest.raises(TorrentFileError):
            read_torrent(value)


def test_well_formed_variants_are_read():
    meta = read_torrent(_torrent())
    assert (meta.name, meta.total_size, len(meta.info_hash)) == ("Book", 5, 40)
    multi = _multi_file([{"length": 3, "path": ["a", "b.mp3"]}, {"length": 4, "path": ["c.m4b"]}])
    assert read_torrent(multi).total_size == 7
    assert read_torrent(_torrent(name="")).name == ""  # clients name such a torrent by its hash


@pytest.fixture(scope="module")
def valid_torrent(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("fuzz") / "Author - Book"
    folder.mkdir()
    (folder / "part 1.mp3").write_bytes(b"a" * 70_000)
    (folder / "part 2.mp3").write_bytes(b"b" * 1_000)
    return make_torrent(folder, piece_length=16 * 1024)


def _mutate(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return rng.randbytes(rng.randrange(1, 8))
    position = rng.randrange(len(data))
    kind = rng.randrange(6)
    if kind == 0:  # flip a byte
        return data[:position] + bytes([rng.randrange(256)]) + data[position + 1:]
    if kind == 1:  # a bencode token where it does not belong
        return data[:position] + rng.choice([b"i", b"l", b"d", b"e", b":", b"-", b"0", b"9"]) + data[position + 1:]
    if kind == 2:  # cut a run out
        return data[:position] + data[position + rng.randrange(1, 40):]
    if kind == 3:  # insert random bytes
        return data[:position] + rng.randbytes(rng.randrange(1, 8)) + data[position:]
    if kind == 4:  # truncate
        return data[:position]
    return data[:position] + data[position:position + rng.randrange(1, 60)] + data[position:]  # repeat a run


_KEYS = [b"info", b"name", b"length", b"files", b"path", b"pieces", b"piece length", b"announce"]


def _random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(4 if depth < 4 else 2)
    if kind == 0:
        return rng.randrange(-5, 1 << 40)
    if kind == 1:
        return rng.randbytes(rng.randrange(0, 25))
    if kind == 2:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(_KEYS): _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def _swap_a_field(data: bytes, rng: random.Random) -> bytes:
    """The valid torrent with one dictionary field replaced by a random value of any type, or removed."""
    document = bdecode(data)
    node = document
    while True:
        key = rng.choice(sorted(node))
        child = node[key]
        if isinstance(child, list) and child and isinstance(child[0], dict) and rng.random() < 0.7:
            child = rng.choice(child)
        if isinstance(child, dict) and child and rng.random() < 0.7:
            node = child
            continue
        if rng.random() < 0.2:
            del node[key]
        else:
            node[key] = _random_value(rng)
        return bencode(document)


def test_mutated_and_random_bytes_only_ever_raise_torrent_file_error(valid_torrent):
    rng = random.Random(9)
    samples = [valid_torrent]
    for _ in range(3000):
        samples.append(_mutate(rng.choice(samples[-20:]), rng))
    samples += [_swap_a_field(valid_torrent, rng) for _ in range(1500)]
    samples += [bencode(_random_value(rng)) for _ in range(500)]
    samples += [rng.randbytes(rng.randrange(0, 300)) for _ in range(1000)]
    samples += [b"d4:info" + rng.randbytes(rng.randrange(0, 100)) for _ in range(500)]
    outcomes = {"read": 0, "refused": 0}
    for sample in samples:
        try:
            read_torrent(sample)
            outcomes["read"] += 1
        except TorrentFileError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 1000 and outcomes["read"] >= 1


def test_a_magnet_that_urlparse_rejects_is_a_torrent_file_error():
    with pytest.raises(TorrentFileError):
        parse_magnet("magnet://[::1/?xt=urn:btih:" + HASH)

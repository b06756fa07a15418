"""Audio tags for the library's copies of a book: title, album, artist, album artist, composer, year, cover.

`book_tags` maps a book to a plain `TagSet` (pure); `write_tags` puts a TagSet into one file with mutagen
(pure Python, no ffmpeg), one thin writer per container. Only set fields are written: a field that is
None leaves the file's own value alone, and tags we do not manage (track number, chapters, genre) are
kept. The organizer calls `write_tags` on its temporary copy in MEDIA_DIR before the rename, so a crash
never leaves a half-tagged file under its final name, and the torrent's own files are never opened for
writing.

Which title goes into which file: album is always the book's title. A single-file book gets the book's
title as its title; in a multi-file book each file keeps its own title when it has one (usually the
chapter or part name, which players list), else it gets the book's title.

Mapping (author → artist and album artist, narrator → composer, as Audiobookshelf and Plex read them):

| field        | MP4 (.m4b .m4a .mp4) | ID3 (.mp3) | Vorbis comments (.flac .ogg) |
|--------------|----------------------|------------|------------------------------|
| title        | ©nam                 | TIT2       | TITLE                        |
| album        | ©alb                 | TALB       | ALBUM                        |
| artist       | ©ART                 | TPE1       | ARTIST                       |
| album artist | aART                 | TPE2       | ALBUMARTIST                  |
| composer     | ©wri                 | TCOM       | COMPOSER                     |
| year         | ©day                 | TDRC       | DATE                         |
| cover        | covr                 | APIC       | FLAC picture / METADATA_BLOCK_PICTURE |
"""
from __future__ import annotations

import base64
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

MAX_COVER_BYTES = 5 * 1024 * 1024  # embedded in every file of the book: a bigger image is not worth its bytes
COVER_FETCH_TIMEOUT = 5.0          # seconds: an import must not wait on a slow image host
TAGGED_EXTENSIONS = {".m4b", ".m4a", ".mp4", ".mp3", ".flac", ".ogg"}  # .aa/.aax (Audible DRM) are left alone


class TagError(Exception):
    """The file could not be tagged (mutagen cannot parse it); the message says why."""


class CoverError(Exception):
    """No usable cover from that source; the message says why."""


@dataclass(frozen=True)
class Cover:
    data: bytes
    mime: str  # image/jpeg or image/png
    source: str = ""  # where it came from, for the events: a file name or a URL


@dataclass(frozen=True)
class TagSet:
    title: str | None
    album: str | None
    artist: str | None
    album_artist: str | None
    composer: str | None
    year: str | None
    cover: Cover | None = None
    keep_existing_title: bool = False  # a multi-file book: each file's own title wins when it has one


def _clean(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def book_tags(title: str, author: str | None, narrator: str | None = None, year: object = None,
              cover: Cover | None = None) -> TagSet:
    """The tags of a book: album and title = the book's title, artist and album artist = the author,
    composer = the narrator, year only when it is a plausible 4-digit year (else omitted)."""
    year_text = _clean(year)
    if year_text is not None and not (len(year_text) >= 4 and year_text[:4].isdigit()):
        year_text = None
    return TagSet(title=_clean(title), album=_clean(title), artist=_clean(author), album_artist=_clean(author),
                  composer=_clean(narrator), year=year_text[:4] if year_text else None, cover=cover)


def for_file_count(tags: TagSet, files: int) -> TagSet:
    """The same tags for a book of `files` audio files (see the module docstring on titles)."""
    return dataclasses.replace(tags, keep_existing_title=files > 1)


def written_fields(tags: TagSet) -> list[str]:
    """The names of the fields `tags` sets, for the job's event."""
    names = [name.replace("_", " ") for name in ("title", "album", "artist", "album_artist", "composer", "year")
             if getattr(tags, name) is not None]
    return names + (["cover"] if tags.cover is not None else [])


def is_taggable(path: Path) -> bool:
    return Path(path).suffix.lower() in TAGGED_EXTENSIONS


def sniff_image(data: bytes) -> str | None:
    """The MIME type of a JPEG or PNG by its first bytes; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def cover_from_file(path: Path, max_bytes: int = MAX_COVER_BYTES) -> Cover:
    """A cover from an image file; CoverError when too big or not a JPEG/PNG."""
    size = os.stat(path).st_size
    if size > max_bytes:
        raise CoverError(f"{path.name} is larger than {max_bytes} bytes")
    with open(path, "rb") as handle:  # read only: the file may belong to the torrent
        data = handle.read(max_bytes + 1)
    mime = sniff_image(data)
    if mime is None or len(data) > max_bytes:
        raise CoverError(f"{path.name} is not a JPEG or PNG image" if mime is None else f"{path.name} grew too big")
    return Cover(data, mime, path.name)


def first_cover(paths: list[Path], max_bytes: int = MAX_COVER_BYTES) -> Cover | None:
    """The first of `paths` (best first) that is a JPEG or PNG within the size cap."""
    for path in paths:
        try:
            return cover_from_file(path, max_bytes)
        except (CoverError, OSError):
            continue
    return None


def fetch_cover(url: str, timeout: float = COVER_FETCH_TIMEOUT, max_bytes: int = MAX_COVER_BYTES) -> Cover:
    """Download a cover (http/https only, `timeout` per read, at most `max_bytes`); CoverError says why not."""
    if urlparse(url).scheme.lower() not in ("http", "https"):
        raise CoverError("only http and https cover URLs are fetched")
    try:
        with requests.get(url, timeout=timeout, stream=True) as response:
            if response.status_code != 200:
                raise CoverError(f"HTTP {response.status_code}")
            data = b""
            for chunk in response.iter_content(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    raise CoverError(f"larger than {max_bytes} bytes")
    except requests.RequestException as exc:
        raise CoverError(f"{type(exc).__name__}: {exc}") from None
    mime = sniff_image(data)
    if mime is None:
        raise CoverError("not a JPEG or PNG image")
    return Cover(data, mime, url)


# --- writers: one per container ---------------------------------------------------------------------------

def _write_mp4(path: Path, tags: TagSet) -> None:
    from mutagen.mp4 import MP4, MP4Cover

    audio = MP4(path)
    if audio.tags is None:
        audio.add_tags()
    current: Any = audio.tags  # mutagen's tags are untyped
    for key, value in (("©nam", _title(tags, bool(current.get("©nam")))), ("©alb", tags.album),
                       ("©ART", tags.artist), ("aART", tags.album_artist), ("©wri", tags.composer),
                       ("©day", tags.year)):
        if value is not None:
            current[key] = [value]
    if tags.cover is not None:
        kind = MP4Cover.FORMAT_PNG if tags.cover.mime == "image/png" else MP4Cover.FORMAT_JPEG
        current["covr"] = [MP4Cover(tags.cover.data, imageformat=kind)]
    audio.save()


def _write_mp3(path: Path, tags: TagSet) -> None:
    from mutagen.id3 import APIC, TALB, TCOM, TDRC, TIT2, TPE1, TPE2
    from mutagen.mp3 import MP3

    audio = MP3(path)  # parses the audio frames too: a file that is not MP3 fails here, before any write
    if audio.tags is None:
        audio.add_tags()
    current: Any = audio.tags  # mutagen's tags are untyped
    for frame, value in ((TIT2, _title(tags, bool(current.getall("TIT2")))), (TALB, tags.album),
                         (TPE1, tags.artist), (TPE2, tags.album_artist), (TCOM, tags.composer),
                         (TDRC, tags.year)):
        if value is not None:
            current.setall(frame.__name__, [frame(encoding=3, text=[value])])
    if tags.cover is not None:
        current.setall("APIC", [APIC(encoding=3, mime=tags.cover.mime, type=3, desc="Cover",
                                     data=tags.cover.data)])
    audio.save()


def _picture(cover: Cover):
    from mutagen.flac import Picture

    picture = Picture()
    picture.type = 3  # front cover
    picture.mime = cover.mime
    picture.desc = "Cover"
    picture.data = cover.data
    return picture


def _set_comments(comments, tags: TagSet) -> None:
    for key, value in (("TITLE", _title(tags, bool(comments.get("TITLE")))), ("ALBUM", tags.album),
                       ("ARTIST", tags.artist), ("ALBUMARTIST", tags.album_artist), ("COMPOSER", tags.composer),
                       ("DATE", tags.year)):
        if value is not None:
            comments[key] = [value]


def _write_flac(path: Path, tags: TagSet) -> None:
    from mutagen.flac import FLAC

    audio = FLAC(path)
    if audio.tags is None:
        audio.add_tags()
    _set_comments(audio.tags, tags)
    if tags.cover is not None:
        audio.clear_pictures()
        audio.add_picture(_picture(tags.cover))
    audio.save()


def _write_ogg(path: Path, tags: TagSet) -> None:
    import mutagen
    from mutagen.oggflac import OggFLAC
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis

    audio = mutagen.File(path, options=[OggVorbis, OggOpus, OggFLAC])
    if audio is None:
        raise TagError("not an Ogg Vorbis, Opus or FLAC stream")
    if audio.tags is None:
        audio.add_tags()
    _set_comments(audio.tags, tags)
    if tags.cover is not None:
        block = base64.b64encode(_picture(tags.cover).write()).decode("ascii")
        audio.tags["METADATA_BLOCK_PICTURE"] = [block]
    audio.save()


WRITERS = {".m4b": _write_mp4, ".m4a": _write_mp4, ".mp4": _write_mp4, ".mp3": _write_mp3,
           ".flac": _write_flac, ".ogg": _write_ogg}


def _title(tags: TagSet, file_has_title: bool) -> str | None:
    return None if tags.keep_existing_title and file_has_title else tags.title


def write_tags(path: Path, tags: TagSet) -> bool:
    """Write `tags` into `path` (a file of ours: the organizer's temporary copy). False for a format we do
    not tag; TagError when the file cannot be parsed. On TagError the file may be half-written: the
    caller replaces it with a fresh copy."""
    writer = WRITERS.get(Path(path).suffix.lower())
    if writer is None:
        return False
    try:
        writer(Path(path), tags)
    except TagError:
        raise
    except Exception as exc:  # noqa: BLE001 - mutagen raises many types on malformed input (struct, Index…)
        raise TagError(f"{type(exc).__name__}: {exc}") from None
    return True

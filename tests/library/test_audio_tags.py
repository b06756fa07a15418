"""Audio tags on import: the book → tags mapping, one writer per container (read back with mutagen), and
organize_files through the real worker path: copies tagged, the torrent's files never changed."""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path
from unittest import mock

import mutagen
import pytest
from mutagen.flac import FLAC, Picture

from app.config import SettingsError, load_settings
from app.library import tags as tags_module
from app.library.organizer import cover_candidates, organize
from app.library.tags import (
    Cover,
    CoverError,
    TagError,
    book_tags,
    fetch_cover,
    first_cover,
    for_file_count,
    sniff_image,
    write_tags,
    written_fields,
)
from app.models import Request

from builders import event_messages, make_request, run_organize
from fakes.http import QuietHandler, serve

FIXTURES = Path(__file__).parents[1] / "fixtures" / "audio"
FORMATS = ["m4b", "m4a", "mp3", "flac", "ogg"]
COVER = (FIXTURES / "cover.jpg").read_bytes()
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # only the signature matters to the tag writers


# --- the pure mapping ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,expected", [
    (("The Way of Kings", "Brandon Sanderson", "Michael Kramer", None),
     ("The Way of Kings", "The Way of Kings", "Brandon Sanderson", "Brandon Sanderson", "Michael Kramer", None)),
    (("  Dune ", "Frank Herbert", None, 1965),                       # stripped; no narrator → no composer
     ("Dune", "Dune", "Frank Herbert", "Frank Herbert", None, "1965")),
    (("Dune", "Frank Herbert", "  ", "2007-01-01"),                  # a date keeps its year only
     ("Dune", "Dune", "Frank Herbert", "Frank Herbert", None, "2007")),
    (("Dune", "", "Scott Brick", "unknown"),                         # nonsense year and empty author: omitted
     ("Dune", "Dune", None, None, "Scott Brick", None)),
    (("Dune", None, None, "99"), ("Dune", "Dune", None, None, None, None)),
])
def test_a_book_maps_to_a_plain_tag_set(args, expected):
    tags = book_tags(*args)
    assert (tags.title, tags.album, tags.artist, tags.album_artist, tags.composer, tags.year) == expected
    assert tags.cover is None and tags.keep_existing_title is False


@pytest.mark.parametrize("tags,fields", [
    (book_tags("Dune", "Frank Herbert", "Scott Brick", 1965, Cover(COVER, "image/jpeg")),
     ["title", "album", "artist", "album artist", "composer", "year", "cover"]),
    (book_tags("Dune", "Frank Herbert"), ["title", "album", "artist", "album artist"]),
])
def test_the_event_names_the_fields_written(tags, fields):
    assert written_fields(tags) == fields


@pytest.mark.parametrize("files,keep", [(1, False), (2, True), (40, True)])
def test_multi_file_books_keep_each_files_own_title(files, keep):
    tags = for_file_count(book_tags("Dune", "Frank Herbert"), files)
    assert tags.keep_existing_title is keep and tags.album == "Dune"


@pytest.mark.parametrize("data,mime", [
    (COVER, "image/jpeg"), (PNG, "image/png"), (b"GIF89a....", None), (b"jpeg", None), (b"", None),
])
def test_only_jpeg_and_png_are_covers(data, mime):
    assert sniff_image(data) == mime


# --- one writer per container, read back with mutagen --------------------------------------------------------

def _copy_fixture(fmt: str, folder: Path, name: str | None = None) -> Path:
    path = folder / (name or f"sample.{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / f"sample.{fmt}", path)
    return path


def read_tags(path: Path) -> dict:
    """title/album/artist/album_artist/composer/year and the cover (bytes, mime) of any of the five formats."""
    audio = mutagen.File(path)
    tags = audio.tags
    if path.suffix.lower() in (".m4b", ".m4a", ".mp4"):
        keys = ("©nam", "©alb", "©ART", "aART", "©wri", "©day")
        values = [tags.get(k, [None])[0] if tags else None for k in keys]
        covers = tags.get("covr", []) if tags else []
        cover = (bytes(covers[0]), "image/png" if covers[0].imageformat == 14 else "image/jpeg") if covers else None
    elif path.suffix.lower() == ".mp3":
        keys = ("TIT2", "TALB", "TPE1", "TPE2", "TCOM", "TDRC")
        values = [str(tags[k].text[0]) if tags and k in tags else None for k in keys]
        pictures = tags.getall("APIC") if tags else []
        cover = (pictures[0].data, pictures[0].mime) if pictures else None
    else:
        keys = ("title", "album", "artist", "albumartist", "composer", "date")
        values = [tags.get(k, [None])[0] if tags else None for k in keys]
        if isinstance(audio, FLAC):
            pictures = audio.pictures
        else:
            pictures = [Picture(base64.b64decode(b)) for b in (tags.get("metadata_block_picture", []) if tags else [])]
        cover = (pictures[0].data, pictures[0].mime) if pictures else None
    return dict(zip(("title", "album", "artist", "album_artist", "composer", "year"), values, strict=True), cover=cover)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


BOOK = book_tags("The Way of Kings", "Brandon Sanderson", "Michael Kramer", 2010,
                 Cover(COVER, "image/jpeg", "cover.jpg"))
EXPECTED = {"title": "The Way of Kings", "album": "The Way of Kings", "artist": "Brandon Sanderson",
            "album_artist": "Brandon Sanderson", "composer": "Michael Kramer", "year": "2010"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_written_and_reads_back(fmt, tmp_path):
    path = _copy_fixture(fmt, tmp_path)
    assert read_tags(path)["album"] is None  # the fixtures carry no tags of ours
    assert write_tags(path, BOOK) is True
    assert read_tags(path) == {**EXPECTED, "cover": (COVER, "image/jpeg")}
    assert mutagen.File(path).info.length > 0  # still audio
    write_tags(path, book_tags("Other", "Someone", cover=Cover(PNG, "image/png")))
    again = read_tags(path)  # a second write replaces (one cover, not two); fields it leaves unset stay
    assert again["album"] == "Other" and again["composer"] == "Michael Kramer" and again["cover"] == (PNG, "image/png")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_multi_file_book_keeps_a_files_own_title(fmt, tmp_path):
    path = _copy_fixture(fmt, tmp_path)
    write_tags(path, book_tags("Chapter 3", None))
    write_tags(path, for_file_count(BOOK, 12))
    assert read_tags(path)["title"] == "Chapter 3" and read_tags(path)["album"] == "The Way of Kings"
    untitled = _copy_fixture(fmt, tmp_path, f"untitled.{fmt}")
    write_tags(untitled, for_file_count(BOOK, 12))
    assert read_tags(untitled)["title"] == "The Way of Kings"  # no title of its own: the book's


def test_tags_we_do_not_manage_are_kept(tmp_path):
    path = _copy_fixture("ogg", tmp_path)
    write_tags(path, BOOK)
    assert mutagen.File(path).tags["encoder"] == ["Lavc libvorbis"]


@pytest.mark.parametrize("name,content", [
    ("broken.mp3", b"audio" * 100), ("broken.m4b", os.urandom(5000)), ("broken.flac", b"fLaC" + b"\x00" * 40),
    ("broken.ogg", b"OggS" + b"\x01" * 60),
])
def test_a_file_mutagen_cannot_parse_is_a_tag_error(name, content, tmp_path):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(TagError):
        write_tags(tmp_path / name, BOOK)


def test_formats_we_do_not_tag_are_left_alone(tmp_path):
    (tmp_path / "book.aax").write_bytes(b"drm" * 10)
    assert write_tags(tmp_path / "book.aax", BOOK) is False
    assert (tmp_path / "book.aax").read_bytes() == b"drm" * 10


# --- covers ------------------------------------------------------------------------------------------------------

def test_cover_candidates_prefer_a_named_cover_then_the_largest_image(tmp_path):
    book = tmp_path / "dl" / "book"
    (book / "scans").mkdir(parents=True)
    (book / "scans" / "back.jpg").write_bytes(COVER + b"\x00" * 500)
    (book / "small.png").write_bytes(PNG)
    (book / "Folder.JPG").write_bytes(COVER)
    (tmp_path / "secret.jpg").write_bytes(COVER + b"\x00" * 9000)
    (book / "link.jpg").symlink_to(tmp_path / "secret.jpg")  # points out: never a candidate
    candidates = cover_candidates(book, read_root=tmp_path / "dl")
    assert [p.name for p in candidates] == ["Folder.JPG", "back.jpg", "small.png"]
    (book / "Folder.JPG").unlink()
    assert first_cover(cover_candidates(book, tmp_path / "dl")).data == COVER + b"\x00" * 500
    assert first_cover(cover_candidates(book, tmp_path / "dl"), max_bytes=len(COVER) + 100).data == PNG  # capped
    assert cover_candidates(book / "small.png", tmp_path / "dl") == []  # a single-file download has none
    assert cover_candidates(book, read_root=tmp_path / "elsewhere") == []


class CoverServer(QuietHandler):
    def do_GET(self):
        if self.path == "/cover.png":
            self._send(200, PNG, "image/png")
        elif self.path == "/big.jpg":
            self._send(200, COVER + b"\x00" * 5000, "image/jpeg")
        elif self.path == "/page.html":
            self._send(200, b"<html>not an image</html>", "text/html")
        else:
            self._send(404, b"no", "text/plain")


@pytest.fixture
def cover_server():
    server = serve(CoverServer)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetching_a_cover(cover_server):
    assert fetch_cover(f"{cover_server}/cover.png") == Cover(PNG, "image/png", f"{cover_server}/cover.png")
    for url, reason in [(f"{cover_server}/missing.jpg", "HTTP 404"), (f"{cover_server}/page.html", "not a JPEG"),
                        ("file:///etc/passwd", "only http and https"), ("ftp://example.com/c.jpg", "only http"),
                        ("http://127.0.0.1:9/c.jpg", "ConnectionError")]:
        with pytest.raises(CoverError, match=reason):
            fetch_cover(url)
    with pytest.raises(CoverError, match="larger than 1000 bytes"):
        fetch_cover(f"{cover_server}/big.jpg", max_bytes=1000)


# --- the organizer: temporary copy tagged before the rename, sources never written -------------------------------

def test_organize_tags_copies_and_never_the_source(tmp_path):
    download, media = tmp_path / "dl", tmp_path / "media"
    sources = [_copy_fixture(fmt, download, f"part.{fmt}") for fmt in FORMATS]
    before = {p.name: _sha256(p) for p in sources}
    result = organize(download, media / "A" / "B", media, tags=BOOK)
    assert sorted(result.tagged) == sorted(before) and result.warnings == []
    for name in before:
        assert read_tags(media / "A" / "B" / name) == {**EXPECTED, "cover": (COVER, "image/jpeg")}
    assert {p.name: _sha256(p) for p in sources} == before
    again = organize(download, media / "A" / "B", media, tags=BOOK)  # a re-run finds them in place
    assert sorted(again.skipped) == sorted(before) and again.copied == []


def test_a_failed_tag_write_leaves_an_untagged_copy_not_a_half_written_one(tmp_path):
    download, media = tmp_path / "dl", tmp_path / "media"
    source = _copy_fixture("mp3", download)

    def half_write_then_fail(path, tags):
        with open(path, "r+b") as handle:
            handle.write(b"garbage")
        raise ValueError("simulated failure after a partial write")

    with mock.patch.dict(tags_module.WRITERS, {".mp3": half_write_then_fail}):
        result = organize(download, media / "A" / "B", media, tags=BOOK)
    assert result.tagged == [] and "sample.mp3: tags not written" in result.warnings[0]
    assert (media / "A" / "B" / "sample.mp3").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in (media / "A" / "B").iterdir()) == ["sample.mp3"]  # no temporary file left


def test_hardlinks_and_shared_inodes_are_never_tagged(tmp_path):
    download, media = tmp_path / "dl", tmp_path / "media"
    source = _copy_fixture("m4b", download)
    digest = _sha256(source)
    result = organize(download, media / "A" / "B", media, mode="hardlink", tags=BOOK)
    assert result.tagged == [] and _sha256(source) == digest
    assert os.stat(media / "A" / "B" / "sample.m4b").st_ino == os.stat(source).st_ino
    extra = tmp_path / "other-name.m4b"  # a second name for the temporary copy: the guard must see it
    real_copy2 = shutil.copy2

    def copy_and_link(src, dst):
        real_copy2(src, dst)
        if not extra.exists():
            os.link(dst, extra)

    with mock.patch.object(shutil, "copy2", copy_and_link):
        shared = organize(download, media / "A" / "C", media, tags=BOOK)
    assert shared.tagged == [] and "other hard links" in shared.warnings[0]
    assert _sha256(extra) == digest and _sha256(media / "A" / "C" / "sample.m4b") == digest


# --- organize_files through the worker ----------------------------------------------------------------------------

def _request(**book) -> Request:
    """A downloading request for a book with a narrator (a tag the writers must carry) and `book`'s columns."""
    return make_request(book={"narrator": "Michael Kramer", **book})


def _book_folder(downloads: Path, formats=FORMATS, cover: bytes | None = COVER) -> tuple[Path, dict[str, str]]:
    folder = downloads / "Brandon Sanderson - The Way of Kings"
    for number, fmt in enumerate(formats, 1):
        _copy_fixture(fmt, folder, f"Part {number}.{fmt}")
    if cover is not None:
        (folder / "cover.jpg").write_bytes(cover)
    return folder, {p.name: _sha256(p) for p in folder.iterdir()}


def _sources_unchanged(folder: Path, digests: dict[str, str]) -> bool:
    return {p.name: _sha256(p) for p in folder.iterdir()} == digests


TARGET = Path("Brandon Sanderson") / "The Way of Kings"


def test_copy_mode_tags_the_copies_with_the_cover_and_leaves_the_torrent_alone(dirs):
    downloads, media = dirs
    folder, digests = _book_folder(downloads)
    write_tags(folder / "Part 2.m4a", book_tags("Chapter Two", None))  # the torrent's own title for a part
    digests = {p.name: _sha256(p) for p in folder.iterdir()}
    job = run_organize(_request(), folder)
    assert job.status == "completed", job.error_message
    target = media / TARGET
    for number, fmt in enumerate(FORMATS, 1):
        title = "Chapter Two" if fmt == "m4a" else "The Way of Kings"  # multi-file: a file's own title stays
        assert read_tags(target / f"Part {number}.{fmt}") == {**EXPECTED, "year": None, "title": title,
                                                              "cover": (COVER, "image/jpeg")}
    assert _sources_unchanged(folder, digests)
    assert sorted(job.result["taggedFiles"]) == sorted(f"Part {n}.{f}" for n, f in enumerate(FORMATS, 1))
    assert "Tagged 5 file(s): title, album, artist, album artist, composer, cover" in event_messages(job, "info")
    assert not event_messages(job, "warn")
    assert Request.get_by_id(job.request_id).status == "downloaded"


def test_hardlink_mode_writes_no_tags_and_says_so(dirs, use_settings):
    downloads, media = dirs
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), ORGANIZE_MODE="hardlink")
    folder, digests = _book_folder(downloads, ["m4b", "mp3"])
    job = run_organize(_request(), folder)
    assert job.status == "completed", job.error_message
    assert _sources_unchanged(folder, digests)
    for name in ("Part 1.m4b", "Part 2.mp3"):
        assert os.stat(media / TARGET / name).st_ino == os.stat(folder / name).st_ino
        assert read_tags(media / TARGET / name)["album"] is None
    assert any("Tags not written: ORGANIZE_MODE=hardlink" in m for m in event_messages(job, "info"))
    assert job.result["taggedFiles"] == []


def test_tag_files_false_copies_byte_for_byte(dirs, use_settings):
    downloads, media = dirs
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), TAG_FILES="false")
    folder, digests = _book_folder(downloads)
    job = run_organize(_request(), folder)
    assert job.status == "completed", job.error_message
    for name, digest in digests.items():
        assert _sha256(media / TARGET / name) == digest
    assert job.result["taggedFiles"] == [] and not any("Tag" in m for m in event_messages(job))


def test_move_mode_owns_the_files_and_tags_them(dirs, use_settings):
    downloads, media = dirs
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), ORGANIZE_MODE="move")
    folder, _ = _book_folder(downloads, ["flac"])
    job = run_organize(_request(), folder)
    assert job.status == "completed", job.error_message
    assert not (folder / "Part 1.flac").exists()
    assert read_tags(media / TARGET / "Part 1.flac")["title"] == "The Way of Kings"  # one file: the book's title


def test_a_corrupt_mp3_is_a_warning_and_the_import_still_succeeds(dirs):
    downloads, media = dirs
    folder, _ = _book_folder(downloads, ["flac"])
    (folder / "Part 2.mp3").write_bytes(b"not really an mp3 " * 50)
    digests = {p.name: _sha256(p) for p in folder.iterdir()}
    job = run_organize(_request(), folder)
    assert job.status == "completed" and job.result["success"] is True, job.error_message
    assert Request.get_by_id(job.request_id).status == "downloaded"
    [warning] = event_messages(job, "warn")
    assert warning.startswith("Part 2.mp3: tags not written, imported untagged")
    assert _sha256(media / TARGET / "Part 2.mp3") == digests["Part 2.mp3"]  # the untagged copy
    assert read_tags(media / TARGET / "Part 1.flac")["album"] == "The Way of Kings"
    assert _sources_unchanged(folder, digests)


def test_without_a_cover_in_the_download_the_books_cover_url_is_fetched(dirs, cover_server):
    downloads, media = dirs
    folder, digests = _book_folder(downloads, ["m4b"], cover=None)
    job = run_organize(_request(cover_art_url=f"{cover_server}/cover.png"), folder)
    assert job.status == "completed", job.error_message
    assert read_tags(media / TARGET / "Part 1.m4b")["cover"] == (PNG, "image/png")
    assert _sources_unchanged(folder, digests) and not event_messages(job, "warn")


def test_a_cover_url_that_fails_is_a_warning_and_the_files_are_tagged_without_one(dirs, cover_server):
    downloads, media = dirs
    folder, _ = _book_folder(downloads, ["mp3"], cover=b"not an image")  # no usable cover in the download
    job = run_organize(_request(cover_art_url=f"{cover_server}/gone.jpg"), folder)
    assert job.status == "completed", job.error_message
    [warning] = event_messages(job, "warn")
    assert f"Cover not fetched from {cover_server}/gone.jpg (HTTP 404)" in warning
    tags = read_tags(media / TARGET / "Part 1.mp3")
    assert tags["album"] == "The Way of Kings" and tags["cover"] is None


# --- the setting ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,value", [(None, True), ("false", False), ("0", False), ("yes", True)])
def test_tag_files_setting(raw, value):
    env = {} if raw is None else {"TAG_FILES": raw}
    assert load_settings(env, env_file=None).tag_files is value


def test_a_bad_tag_files_value_stops_the_start():
    with pytest.raises(SettingsError, match="TAG_FILES"):
        load_settings({"TAG_FILES": "sometimes"}, env_file=None)

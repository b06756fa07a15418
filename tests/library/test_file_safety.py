"""File safety of the import, on real files: name lengths in bytes, read confinement, the temp-file sweep."""
from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path
from unittest import mock

import pytest

from app.config import SettingsError, get_settings, load_settings, set_settings
from app.library import organizer
from app.library.organizer import TEMP_PREFIX, organize
from app.library.paths import (
    MAX_NAME_BYTES,
    UnsafePathError,
    cut_to_bytes,
    inside,
    render_template,
    resolved,
    sanitize,
    with_counter,
)
from app.models import Audiobook, Request

from builders import event_messages, make_request, run_organize

EMOJI = "\N{GRINNING FACE}"  # 4 bytes in UTF-8
FAMILY = "\N{MAN}\u200d\N{WOMAN}\u200d\N{GIRL}"  # one emoji of 5 code points joined by ZWJ, 18 bytes


def _bytes(name: str) -> int:
    return len(os.fsencode(name))


@pytest.fixture
def dirs(tmp_path, use_settings, redis_conn):
    downloads, media = tmp_path / "downloads", tmp_path / "media"
    downloads.mkdir()
    media.mkdir()
    # One attempt: a refused or failing import shows at once instead of after the back-off.
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), JOB_MAX_ATTEMPTS=1)
    return downloads, media


def _book(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


# --- names: cut by bytes, extension kept ------------------------------------------------------------------

@pytest.mark.parametrize("name,keep_suffix,expected", [
    ("y" * 240 + ".mp3", True, "y" * 240 + ".mp3"),                    # 244 characters fit: untouched
    ("y" * 300 + ".mp3", True, "y" * 251 + ".mp3"),                    # cut before the extension, 255 bytes
    ("作" * 100, False, "作" * 85),                                    # 300 bytes → 85 characters of 3 bytes
    ("作" * 100 + ".m4b", True, "作" * 83 + ".m4b"),                   # 83 × 3 + 4 = 253: an 84th would not fit
    (EMOJI * 300, False, EMOJI * 63),                                  # 63 × 4 = 252, never half an emoji
    (EMOJI * 300 + ".mp3", True, EMOJI * 62 + ".mp3"),
    (FAMILY * 20, False, FAMILY * 14),                                 # 14 × 18 = 252: cut between emoji
    ("a" * 12 + FAMILY * 20, False, "a" * 12 + FAMILY * 13 + "\N{MAN}"),  # no joiner left dangling
    ("x" * 254 + " . y" * 3, False, "x" * 254),                        # no trailing space or dot after the cut
    ("***.mp3", True, ""),                                             # only an extension left: empty
    ("<>:.MP3", True, ""),
    (".mp3", True, ""),
    ("...", False, ""),
    ("?*|", False, ""),
    ("Chapter 1.mp3.", True, "Chapter 1.mp3"),
    ("Vol. 2", False, "Vol. 2"),                                       # folders have no extension to keep
    ("I \u2764\ufe0f NY", False, "I \u2764\ufe0f NY"),                   # a variation selector is content
    ("Title\u200d. ", False, "Title"),                                  # a joiner at the end joins nothing
    ("...hidden.", False, "hidden"),
    ("caf\udce9.mp3", True, "caf\udce9.mp3"),                          # an undecodable byte counts as one
    ("bad\ud800name.mp3", True, "badname.mp3"),                        # a lone surrogate cannot be written
])
def test_names_are_cut_by_bytes_keeping_the_extension(name, keep_suffix, expected):
    cleaned = sanitize(name, keep_suffix=keep_suffix)
    assert cleaned == expected
    assert _bytes(cleaned) <= MAX_NAME_BYTES


@pytest.mark.parametrize("text,limit,expected", [
    ("abc", 2, "ab"), ("作作", 5, "作"), ("作作", 6, "作作"), (EMOJI, 3, ""), ("é" * 3, 5, "éé"), ("", 4, ""),
])
def test_cut_to_bytes_never_splits_a_character(text, limit, expected):
    assert cut_to_bytes(text, limit) == expected


@pytest.mark.parametrize("name,counter,expected", [
    ("01.mp3", 1, "01 (1).mp3"),
    ("y" * 251 + ".mp3", 2, "y" * 247 + " (2).mp3"),
    (EMOJI * 62 + ".mp3", 12, EMOJI * 61 + " (12).mp3"),
    ("notes", 3, "notes (3)"),
])
def test_a_counter_keeps_the_name_within_the_limit(name, counter, expected):
    assert with_counter(name, counter) == expected
    assert _bytes(expected) <= MAX_NAME_BYTES


# Characters that have broken name handling somewhere: reserved, dots, spaces of all kinds, 3- and 4-byte
# characters, joiners, combining marks, an undecodable byte as os.listdir returns it, a lone surrogate.
_TRICKY = list("aZ09-_") + list('<>:"/\\|?*. ') + ["\t", "\x00", "\xa0", "\u2028", "é", "e\u0301", "作", "書",
                                                   EMOJI, FAMILY, "\u200d", "\ufe0f", "\udce9", "\ud800"]


def test_any_name_sanitises_to_a_name_the_filesystem_accepts(tmp_path):
    """Deterministic fuzz: 400 names of tricky characters, each written to a real folder."""
    import random

    rng = random.Random(10)
    for _ in range(400):
        extension = rng.choice(["", ".mp3", ".M4B", ".flac"])
        name = "".join(rng.choice(_TRICKY) for _ in range(rng.randint(0, 160))) + extension
        for keep_suffix in (True, False):
            cleaned = sanitize(name, keep_suffix=keep_suffix)
            assert sanitize(cleaned, keep_suffix=keep_suffix) == cleaned, name  # stable: a re-import finds it
            if not cleaned:
                continue
            assert _bytes(cleaned) <= MAX_NAME_BYTES and not cleaned.startswith((".", " ")), name
            assert not cleaned.endswith((".", " ", "\u200d")), name
            if keep_suffix and extension:
                assert cleaned.endswith(extension), name
            os.close(os.open(os.fsencode(tmp_path / cleaned), os.O_CREAT | os.O_WRONLY))  # the real test


def test_folder_names_from_the_template_are_cut_by_bytes():
    assert render_template("{author}/{title}", {"author": "作" * 100, "title": EMOJI * 300}) == ["作" * 85, EMOJI * 63]
    assert render_template("{author}/{title}", {"author": "***", "title": "Dune"}) == ["Dune"]


def test_a_244_character_ascii_name_keeps_mp3_on_disk(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    # 244 characters (cut to 200 without ".mp3" before) and 255 bytes, the longest name a folder can hold;
    # both go through a temporary name in the same folder, which must fit as well
    download = _book(tmp_path / "dl", {"y" * 240 + ".mp3": b"a" * 100, "z" * 251 + ".mp3": b"b" * 100})
    result = organize(download, media / "A" / "B", media)
    assert sorted(result.copied) == ["y" * 240 + ".mp3", "z" * 251 + ".mp3"]
    assert (media / "A" / "B" / ("y" * 240 + ".mp3")).read_bytes() == b"a" * 100


def test_a_cjk_author_and_title_of_100_characters_import(dirs):
    downloads, media = dirs
    download = _book(downloads / "book", {"01.mp3": b"a" * 100, "作" * 80 + ".m4b": b"b" * 100})
    request = make_request(title="書" * 100, author="作" * 100)
    job = run_organize(request, download)
    assert job.status == "completed", job.error_message
    target = media / ("作" * 85) / ("書" * 85)
    assert sorted(p.name for p in target.iterdir()) == ["01.mp3", "作" * 80 + ".m4b"]
    assert Request.get_by_id(request.id).status == "downloaded"
    assert Audiobook.get_by_id(request.audiobook_id).file_path == str(target)


def test_a_title_of_300_emoji_and_colliding_long_emoji_file_names(dirs):
    downloads, media = dirs
    long_name = EMOJI * 62 + ".mp3"  # 252 bytes: the longest emoji name a source folder can hold
    # "CD1" and "CD1?" sanitise to the same prefix: the prefixed names collide and are numbered too.
    download = _book(downloads / "book", {f"CD1/{long_name}": b"1", f"CD1?/{long_name}": b"2",
                                          f"CD2/{long_name}": b"3"})
    job = run_organize(make_request(title=EMOJI * 300, author="A"), download)
    assert job.status == "completed", job.error_message
    target = media / "A" / (EMOJI * 63)
    names = sorted(p.name for p in target.iterdir())
    assert len(names) == 3 and all(n.endswith(".mp3") and _bytes(n) <= MAX_NAME_BYTES for n in names)
    assert sorted((target / n).read_bytes() for n in names) == [b"1", b"2", b"3"]
    assert names == sorted([f"CD1 - {EMOJI * 61}.mp3", f"CD1 - {EMOJI * 60} (1).mp3", f"CD2 - {EMOJI * 61}.mp3"])


def test_file_names_that_sanitise_to_nothing_keep_their_extension(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    download = _book(tmp_path / "dl", {"***.mp3": b"a", "<>.MP3": b"b", "01.mp3": b"c"})  # sorted: *, 0, <
    result = organize(download, media / "A" / "B", media)
    names = sorted(p.name for p in (media / "A" / "B").iterdir())
    assert names == ["01.mp3", "track-01.mp3", "track-03.mp3"] and sorted(result.copied) == names
    assert [(media / "A" / "B" / n).read_bytes() for n in names] == [b"c", b"a", b"b"]


def test_a_file_name_that_is_not_utf8_still_imports(tmp_path):
    media = tmp_path / "media"
    download = tmp_path / "dl"
    media.mkdir()
    download.mkdir()
    with open(os.path.join(os.fsencode(download), b"caf\xe9.mp3"), "wb") as handle:  # Latin-1 from an old rip
        handle.write(b"audio")
    result = organize(download, media / "A" / "B", media)
    assert os.listdir(os.fsencode(media / "A" / "B")) == [b"caf\xe9.mp3"] and len(result.copied) == 1


# --- reads confined to DOWNLOAD_DIR; move needs it ----------------------------------------------------------

def test_move_without_download_dir_stops_the_start_with_every_problem_listed():
    with pytest.raises(SettingsError) as raised:
        load_settings({"ORGANIZE_MODE": "move", "JOB_MAX_ATTEMPTS": "0"}, env_file=None)
    assert "ORGANIZE_MODE=move requires DOWNLOAD_DIR" in str(raised.value)
    assert "JOB_MAX_ATTEMPTS must be at least 1" in str(raised.value)  # listed together, not one at a time
    assert load_settings({"ORGANIZE_MODE": "move", "DOWNLOAD_DIR": "/srv/downloads"}, env_file=None).organize_mode \
        == "move"
    assert load_settings({"ORGANIZE_MODE": "copy"}, env_file=None).download_dir == ""


def test_a_worker_with_unchecked_settings_refuses_to_move_without_download_dir(dirs, tmp_path):
    """Settings built in code skip load_settings: the processor checks again before deleting anything."""
    elsewhere = _book(tmp_path / "elsewhere", {"01.mp3": b"precious"})
    set_settings(dataclasses.replace(get_settings(), organize_mode="move", download_dir=""))
    job = run_organize(make_request(), elsewhere)
    assert job.status == "failed" and "DOWNLOAD_DIR" in job.error_message
    assert (elsewhere / "01.mp3").read_bytes() == b"precious"


def test_a_file_swapped_for_a_symlink_out_after_discovery_is_not_read(dirs, tmp_path):
    downloads, media = dirs
    secret = tmp_path / "secret.mp3"
    secret.write_bytes(b"private")
    download = _book(downloads / "book", {"01.mp3": b"a", "02.mp3": b"b"})
    real_discover = organizer.discover

    def discover_then_swap(path):  # what a hostile torrent or a second process can do at that moment
        found = real_discover(path)
        (download / "02.mp3").unlink()
        (download / "02.mp3").symlink_to(secret)
        return found

    with mock.patch.object(organizer, "discover", discover_then_swap):
        job = run_organize(make_request(), download)
    assert job.status == "completed", job.error_message
    target = media / "Brandon Sanderson" / "The Way of Kings"
    assert sorted(p.name for p in target.iterdir()) == ["01.mp3"]
    assert any("02.mp3" in m and "outside DOWNLOAD_DIR" in m for m in event_messages(job, "error"))


def test_organize_refuses_a_download_path_outside_its_read_root(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    outside = _book(tmp_path / "private", {"secret.mp3": b"private"})
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "link").symlink_to(outside)
    for path in (outside, tmp_path / "downloads" / "link", tmp_path / "downloads" / ".." / "private"):
        with pytest.raises(UnsafePathError, match="outside DOWNLOAD_DIR"):
            organize(path, media / "A" / "B", media, read_root=tmp_path / "downloads")
    assert not (media / "A").exists()


def test_a_special_file_named_like_audio_is_refused_not_copied(dirs):
    downloads, media = dirs
    download = _book(downloads / "book", {"01.mp3": b"a"})
    os.mkfifo(download / "02.mp3")  # copying a pipe would block or fail the whole import
    job = run_organize(make_request(), download)
    assert job.status == "completed", job.error_message
    assert sorted(p.name for p in (media / "Brandon Sanderson" / "The Way of Kings").iterdir()) == ["01.mp3"]
    assert any("02.mp3: not a regular file" in m for m in event_messages(job, "error"))


# --- symlink loops: libtorrent turns a symlink that points out of its torrent into a link to itself ----------

def _loops(download: Path) -> None:
    """03.mp3 and cover.jpg point at themselves; 04.mp3 and 05.mp3 at each other."""
    (download / "03.mp3").symlink_to("03.mp3")
    (download / "cover.jpg").symlink_to("cover.jpg")
    (download / "04.mp3").symlink_to("05.mp3")
    (download / "05.mp3").symlink_to("04.mp3")


@pytest.mark.parametrize("confined", [True, False], ids=["DOWNLOAD_DIR set", "DOWNLOAD_DIR unset"])
def test_symlink_loops_in_a_download_are_refused_and_the_rest_is_imported(dirs, use_settings, confined):
    downloads, media = dirs
    if not confined:
        use_settings(MEDIA_DIR=str(media), JOB_MAX_ATTEMPTS=1)
    download = _book(downloads / "book", {"01.mp3": b"a", "02.mp3": b"b"})
    _loops(download)
    request = make_request()
    job = run_organize(request, download)
    assert job.status == "completed", job.error_message
    assert Request.get_by_id(request.id).status == "downloaded"
    assert sorted(p.name for p in (media / "Brandon Sanderson" / "The Way of Kings").iterdir()) == ["01.mp3", "02.mp3"]
    errors = event_messages(job, "error")
    for name in ("03.mp3", "04.mp3", "05.mp3", "cover.jpg"):
        assert any(name in m and "cannot be resolved (a symlink loop)" in m for m in errors), (name, errors)


@pytest.mark.parametrize("confined", [True, False], ids=["DOWNLOAD_DIR set", "DOWNLOAD_DIR unset"])
def test_a_download_path_that_is_a_symlink_loop_is_refused_at_once(dirs, use_settings, confined):
    downloads, media = dirs
    if not confined:
        use_settings(MEDIA_DIR=str(media), JOB_MAX_ATTEMPTS=1)
    (downloads / "book.mp3").symlink_to("book.mp3")  # a single-file torrent whose file was such a link
    request = make_request()
    job = run_organize(request, downloads / "book.mp3")
    assert job.status == "failed" and "cannot be resolved (a symlink loop)" in job.error_message, job.error_message
    assert "REMOTE_PATH_MAPPINGS" not in job.error_message  # not blamed on the mappings
    assert Request.get_by_id(request.id).status == "failed"
    assert not (media / "Brandon Sanderson").exists()


def test_a_path_that_cannot_be_resolved_is_outside(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "real").mkdir()
    assert resolved(tmp_path / "loop") is None
    assert resolved(tmp_path / "real" / "missing") == tmp_path.resolve() / "real" / "missing"  # missing is fine
    assert not inside(tmp_path, tmp_path / "loop")
    assert not inside(tmp_path / "loop", tmp_path / "loop")
    assert not inside(tmp_path / "loop", tmp_path / "real")
    assert inside(tmp_path, tmp_path / "real")


# --- leftover temporary files --------------------------------------------------------------------------------

def _temp_file(target: Path, tag: str, age_seconds: float = 0) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    temp = target / f"{TEMP_PREFIX}{tag}-{uuid.uuid4().hex}.mp3"
    temp.write_bytes(b"half written")
    if age_seconds:
        stamp = time.time() - age_seconds
        os.utime(temp, (stamp, stamp))
    return temp


def test_a_fresh_temp_file_of_another_request_survives_an_import(dirs):
    downloads, media = dirs
    request = make_request()
    target = media / "Brandon Sanderson" / "The Way of Kings"
    concurrent = _temp_file(target, str(uuid.uuid4()))  # another request writing into the same folder now
    job = run_organize(request, _book(downloads / "book", {"01.mp3": b"a"}))
    assert job.status == "completed", job.error_message
    assert concurrent.exists()
    assert sorted(p.name for p in target.iterdir()) == sorted(["01.mp3", concurrent.name])


def test_the_same_requests_leftover_is_removed_by_its_next_import(dirs):
    downloads, media = dirs
    request = make_request()
    target = media / "Brandon Sanderson" / "The Way of Kings"
    leftover = _temp_file(target, str(request.id))  # fresh: an earlier run of this import crashed just now
    job = run_organize(request, _book(downloads / "book", {"01.mp3": b"a"}))
    assert job.status == "completed", job.error_message
    assert sorted(p.name for p in target.iterdir()) == ["01.mp3"]
    assert any(leftover.name in m and "interrupted import" in m for m in event_messages(job, "warn"))


def test_an_hour_old_temp_file_of_anyone_is_removed(tmp_path):
    media = tmp_path / "media"
    target = media / "A" / "B"
    old = _temp_file(target, str(uuid.uuid4()), age_seconds=3601)
    recent = _temp_file(target, str(uuid.uuid4()), age_seconds=3000)
    result = organize(_book(tmp_path / "dl", {"01.mp3": b"a"}), target, media, temp_tag=str(uuid.uuid4()))
    assert not old.exists() and recent.exists()
    assert result.warnings == [f"removed {old.name}, left by an interrupted import"]

"""organize_files on real files: layouts, hostile names, collisions, crashes, retries, modes."""
from __future__ import annotations

import os
from unittest import mock

import pytest

from app.config import SettingsError, load_settings
from app.jobs.queues import queue_names_for_group
from app.jobs.types import Priority
from app.library import organizer
from app.library.organizer import NoAudioFiles, organize
from app.library.paths import (
    PathTemplateError,
    UnsafePathError,
    render_template,
    sanitize,
    target_dir,
    validate_template,
)
from app.models import Audiobook, DownloadHistory, Job, JobEvent, Request

from builders import make_request, run_organize
from helpers import drain


def test_a_multi_file_book_with_nested_folders_and_a_cover(dirs):
    downloads, media = dirs
    book = downloads / "Brandon Sanderson - The Way of Kings"
    for name in ("CD1/01.mp3", "CD1/02.MP3", "CD2/01.mp3", "extras/notes.txt", "Folder.JPG"):
        (book / name).parent.mkdir(parents=True, exist_ok=True)
        (book / name).write_bytes(name.encode() * 100)
    request = make_request()
    job = run_organize(request, book)
    assert job.status == "completed", job.error_message
    target = media / "Brandon Sanderson" / "The Way of Kings"
    assert sorted(p.name for p in target.iterdir()) == ["02.MP3", "CD1 - 01.mp3", "CD2 - 01.mp3", "cover.jpg"]
    assert (target / "CD2 - 01.mp3").read_bytes() == b"CD2/01.mp3" * 100  # same-named files did not collide
    assert (book / "CD1" / "01.mp3").exists()  # copied, not moved: the torrent keeps seeding
    request = Request.get_by_id(request.id)
    assert request.status == "downloaded" and request.error_message is None
    assert Audiobook.get_by_id(request.audiobook_id).file_path == str(target)
    assert job.result["filesCount"] == 3 and job.result["coverArt"] == "cover.jpg"


def test_rerunning_is_idempotent_and_a_single_file_download_works(dirs):
    downloads, media = dirs
    single = downloads / "book.M4B"
    single.write_bytes(os.urandom(50_000))
    first = make_request()
    assert run_organize(first, single).status == "completed"
    Request.update(status="downloading").where(Request.id == first.id).execute()
    again = run_organize(first, single)
    assert again.result["audioFiles"] == ["book.M4B"] and again.result["filesCount"] == 1
    events = [e.message for e in JobEvent.select().where(JobEvent.job == again.id)]
    assert any("0 file(s), 1 already in place" in m for m in events)


def test_no_audio_files_waits_for_a_retry_then_warns_on_the_fifth_attempt(dirs):
    downloads, _ = dirs
    empty = downloads / "Book Without Audio"
    empty.mkdir()
    (empty / "readme.txt").write_text("not audio")
    request = make_request()
    messages = []
    for _ in range(5):  # the first run comes from `downloading`, the next ones from `awaiting_import`
        job = run_organize(request, empty)
        assert job.status == "completed" and job.result["success"] is False  # no queue retry: ours
        current = Request.get_by_id(request.id)
        messages.append((current.status, current.import_attempts))
    assert messages == [("awaiting_import", 1), ("awaiting_import", 2), ("awaiting_import", 3),
                        ("awaiting_import", 4), ("warn", 5)]
    assert "Retry 4/5" not in Request.get_by_id(request.id).error_message
    assert "Manual retry available" in Request.get_by_id(request.id).error_message


def test_a_request_in_warn_is_imported_again_by_a_manual_retry(dirs, client, bearer):
    """After the fifth failed import (warn), Retry re-runs the import from the recorded download at High
    priority, and once the files are there the book is imported."""
    downloads, media = dirs
    folder = downloads / "The Way of Kings"
    folder.mkdir()
    request = make_request()
    DownloadHistory.create(request=request, selected=True, download_path=str(folder), torrent_name=folder.name)
    for _ in range(5):
        run_organize(request, folder)
    assert Request.get_by_id(request.id).status == "warn"

    (folder / "01.mp3").write_bytes(b"audio" * 200)
    response = client.post(f"/api/requests/{request.id}/retry", headers=bearer)
    assert response.status_code == 200, response.get_json()
    job = Job.get_by_id(response.get_json()["jobId"])
    assert (job.type, job.payload["downloadPath"], job.payload["manualRetry"]) == ("organize_files", str(folder), True)
    assert job.priority == Priority.HIGH
    drain(queue_names_for_group("organize_files"))
    assert Job.get_by_id(job.id).status == "completed"
    after = Request.get_by_id(request.id)
    assert (after.status, after.error_message) == ("downloaded", None)
    assert [p.name for p in (media / "Brandon Sanderson" / "The Way of Kings").iterdir()] == ["01.mp3"]


def test_a_missing_download_is_retryable_like_no_audio(dirs):
    downloads, _ = dirs
    request = make_request()
    job = run_organize(request, downloads / "not-there-yet")
    assert job.status == "completed" and Request.get_by_id(request.id).status == "awaiting_import"


def test_paths_outside_the_download_dir_are_refused(dirs, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.mp3").write_bytes(b"x")
    request = make_request()
    job = run_organize(request, outside)
    assert job.status == "failed" and job.attempts == 1 and "outside DOWNLOAD_DIR" in job.error_message
    job = run_organize(make_request(title="Other"), dirs[0] / ".." / "elsewhere")
    assert job.status == "failed" and "outside DOWNLOAD_DIR" in job.error_message


def test_symlinks_that_point_out_are_refused_with_an_event(dirs, tmp_path):
    downloads, media = dirs
    secret = tmp_path / "secret.mp3"
    secret.write_bytes(b"private")
    book = downloads / "Book"
    book.mkdir()
    (book / "01.mp3").write_bytes(b"audio")
    (book / "02.mp3").symlink_to(secret)
    (book / "linked-dir").symlink_to(tmp_path)
    job = run_organize(make_request(), book)
    assert job.status == "completed"
    target = media / "Brandon Sanderson" / "The Way of Kings"
    assert sorted(p.name for p in target.iterdir()) == ["01.mp3"]
    errors = [e.message for e in JobEvent.select().where((JobEvent.job == job.id) & (JobEvent.level == "error"))]
    assert any("02.mp3: symlink pointing outside" in m for m in errors)
    assert any("linked-dir: symlink to a folder" in m for m in errors)


@pytest.mark.parametrize("title,author,expected", [
    ("../../etc/passwd", "Evil", "Evil/etcpasswd"),
    ("/absolute/title", "A", "A/absolutetitle"),
    ("...hidden.", "..", "hidden"),
    ('Wh<a>t: "A" Book?*|', "  Some   Author ", "Some Author/What A Book"),
    ("Ünïcødé 書名", "作者", "作者/Ünïcødé 書名"),
])
def test_hostile_titles_stay_inside_media_dir(tmp_path, title, author, expected):
    media = tmp_path / "media"
    media.mkdir()
    target = target_dir(media, "{author}/{title}", {"author": author, "title": title})
    assert str(target.relative_to(media)) == expected


def test_long_names_are_cut_to_255_bytes():
    assert len(sanitize("x" * 300)) == 255  # Linux counts bytes per name; more in tests/library/test_file_safety.py
    assert render_template("{author}/{title}", {"author": "A", "title": "y" * 300}) == ["A", "y" * 255]


@pytest.mark.parametrize("template,ok", [
    ("{author}/{title}", True), ("{author}/{title} ({year}) {asin}", True), ("{narrator}/{title}", True),
    ("{author}/{series}", False), ("/abs/{title}", False), ("../{title}", False), ("{author}:{title}", False),
])
def test_path_templates_are_validated(template, ok):
    if ok:
        assert validate_template(template) == template
    else:
        with pytest.raises(PathTemplateError):
            validate_template(template)


def test_an_unknown_template_variable_stops_the_start():
    with pytest.raises(SettingsError, match="ORGANIZE_PATH_TEMPLATE"):
        load_settings({"ORGANIZE_PATH_TEMPLATE": "{author}/{genre}"}, env_file=None)


def test_a_crash_between_write_and_rename_leaves_no_file_that_looks_done(tmp_path):
    media, download = tmp_path / "media", tmp_path / "dl"
    media.mkdir()
    download.mkdir()
    (download / "01.mp3").write_bytes(b"a" * 1000)
    (download / "02.mp3").write_bytes(b"b" * 1000)
    target = media / "A" / "B"
    real_replace = os.replace
    calls = []

    def crash_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(5, "I/O error (simulated crash)")
        real_replace(src, dst)

    with mock.patch.object(organizer.os, "replace", crash_on_second):
        with pytest.raises(OSError):
            organize(download, target, media)
    assert sorted(p.name for p in target.iterdir()) == ["01.mp3"]  # no partial 02.mp3, no temp file left
    result = organize(download, target, media)  # the retry completes the job
    assert result.skipped == ["01.mp3"] and result.copied == ["02.mp3"]


def test_hardlink_mode_links_and_move_mode_moves(tmp_path):
    media, download = tmp_path / "media", tmp_path / "dl"
    media.mkdir()
    download.mkdir()
    (download / "01.mp3").write_bytes(b"a" * 100)
    linked = organize(download, media / "A" / "B", media, mode="hardlink")
    assert os.stat(download / "01.mp3").st_ino == os.stat(media / "A" / "B" / "01.mp3").st_ino
    assert linked.warnings == []
    with mock.patch.object(organizer.os, "link", side_effect=OSError(18, "Invalid cross-device link")):
        fallback = organize(download, media / "A" / "C", media, mode="hardlink")
    assert "copied instead" in fallback.warnings[0] and (media / "A" / "C" / "01.mp3").exists()
    organize(download, media / "A" / "D", media, mode="move")
    assert not (download / "01.mp3").exists() and (media / "A" / "D" / "01.mp3").exists()


def test_a_target_outside_media_dir_is_refused(tmp_path):
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "a.mp3").write_bytes(b"x")
    with pytest.raises(UnsafePathError):
        organize(tmp_path / "dl", tmp_path / "elsewhere", tmp_path / "media")
    with pytest.raises(NoAudioFiles):
        (tmp_path / "media").mkdir()
        (tmp_path / "dl2").mkdir()
        organize(tmp_path / "dl2", tmp_path / "media" / "x", tmp_path / "media")

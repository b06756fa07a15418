"""Plex refresh after an import, remote path mappings (REMOTE_PATH_MAPPINGS), Plex path mappings
(PLEX_PATH_MAPPINGS) and a refresh only inside the section's folders."""
from __future__ import annotations

import logging
import re
import shutil
import socket
from pathlib import Path

import pytest

from app.config import (
    SettingsError,
    get_settings,
    load_settings,
    set_settings,
    settings_warnings,
)
from app.integrations.errors import PermanentServiceError
from app.integrations.plex import PlexClient
from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.library.plex_paths import RefreshPlan, library_warning, parse_plex_mappings, plan_refresh
from app.library.remote_paths import (
    PathMapping,
    missing_local_dirs,
    parse_mappings,
    to_client,
    to_local,
)
from app.models import Job, Request

from builders import event_messages, make_request, run_organize
from fakes.plex import FakePlex
from helpers import drain, wait_for

SEEDBOX = "/downloads=/mnt/seedbox/downloads;/data=/srv/data;/data/audio=/srv/audio;D:\\Torrents=/mnt/d/torrents"


# --- the mapping (pure) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("reported,expected", [
    ("/downloads/Book", "/mnt/seedbox/downloads/Book"),
    ("/downloads", "/mnt/seedbox/downloads"),
    ("/downloads/", "/mnt/seedbox/downloads"),
    ("/downloads/A/B/01.mp3", "/mnt/seedbox/downloads/A/B/01.mp3"),
    ("/downloads2/Book", "/downloads2/Book"),            # whole components only
    ("/download/Book", "/download/Book"),
    ("/data/ebooks/x", "/srv/data/ebooks/x"),
    ("/data/audio/Book", "/srv/audio/Book"),             # longest prefix wins, whatever the order
    ("/data/audiobooks/Book", "/srv/data/audiobooks/Book"),
    ("/elsewhere/Book", "/elsewhere/Book"),               # not mapped: unchanged
    ("D:\\Torrents\\Book\\01.mp3", "/mnt/d/torrents/Book/01.mp3"),
    ("d:/torrents/Book", "/mnt/d/torrents/Book"),         # Windows: either separator, any case
    ("D:\\Torrents2\\Book", "D:\\Torrents2\\Book"),
])
def test_client_paths_become_local_paths(reported, expected):
    assert to_local(reported, parse_mappings(SEEDBOX)) == expected


@pytest.mark.parametrize("local,expected", [
    ("/mnt/seedbox/downloads", "/downloads"),
    ("/mnt/seedbox/downloads/Book", "/downloads/Book"),
    ("/srv/audio/x", "/data/audio/x"),
    ("/mnt/d/torrents/Book", "D:\\Torrents\\Book"),
    ("/mnt/seedbox/downloads2", "/mnt/seedbox/downloads2"),
])
def test_local_paths_become_client_paths(local, expected):
    assert to_client(local, parse_mappings(SEEDBOX)) == expected


@pytest.mark.parametrize("raw,expected", [
    ("", ()),
    (" ; ", ()),
    ("/downloads=/mnt/x/", (PathMapping("/downloads", "/mnt/x"),)),
    (" /a = /b ;/c=/d;", (PathMapping("/a", "/b"), PathMapping("/c", "/d"))),
])
def test_mappings_parse(raw, expected):
    assert parse_mappings(raw) == expected


@pytest.mark.parametrize("raw,problem", [
    ("/downloads", "not client=local"),
    ("/downloads=", "not client=local"),
    ("downloads=/mnt/x", "must be absolute"),
    ("/downloads=mnt/x", "must be absolute"),
    ("/downloads=/mnt/../etc", "'..'"),
    ("/a=/b;/a/=/c", "mapped twice"),
])
def test_bad_mappings_stop_the_start_naming_the_setting(raw, problem):
    with pytest.raises(ValueError, match=problem):
        parse_mappings(raw)
    with pytest.raises(SettingsError, match="REMOTE_PATH_MAPPINGS"):
        load_settings({"REMOTE_PATH_MAPPINGS": raw}, env_file=None)


def test_a_missing_local_folder_is_a_warning_logged_once_at_load(tmp_path, monkeypatch, caplog):
    present = tmp_path / "present"
    present.mkdir()
    raw = f"/downloads={present};/data={tmp_path / 'absent'}"
    settings = load_settings({"REMOTE_PATH_MAPPINGS": raw}, env_file=None)  # a warning, not an error
    assert missing_local_dirs(settings.remote_path_mappings) == settings_warnings(settings)
    assert len(settings_warnings(settings)) == 1 and str(tmp_path / "absent") in settings_warnings(settings)[0]

    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("REMOTE_PATH_MAPPINGS", raw)
    set_settings(None)
    try:
        with caplog.at_level(logging.WARNING, logger="app.config"):
            get_settings()
            get_settings()
    finally:
        set_settings(None)
    warnings = [r.getMessage() for r in caplog.records if r.name == "app.config"]
    assert len(warnings) == 1 and "REMOTE_PATH_MAPPINGS" in warnings[0] and "absent" in warnings[0]


# --- organize_files: mappings ---------------------------------------------------------------------------

@pytest.fixture
def dirs(tmp_path, use_settings, redis_conn):
    downloads, media = tmp_path / "downloads", tmp_path / "media"
    downloads.mkdir()
    media.mkdir()
    return downloads, media


def _book(folder):
    folder.mkdir(parents=True)
    # real audio: the import tags it (TAG_FILES) without a warning, as a real book would be
    shutil.copyfile(Path(__file__).parents[1] / "fixtures" / "audio" / "sample.mp3", folder / "01.mp3")
    return folder


def test_a_seedbox_path_is_imported_from_the_mapped_local_folder(dirs, use_settings):
    downloads, media = dirs
    _book(downloads / "complete" / "Way of Kings")
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media),
                 REMOTE_PATH_MAPPINGS=f"/seedbox/data=/nowhere;/seedbox/data/torrents={downloads}")
    request = make_request()
    job = run_organize(request, "/seedbox/data/torrents/complete/Way of Kings")
    assert job.status == "completed" and job.result["success"] is True, job.error_message
    assert (media / "Brandon Sanderson" / "The Way of Kings" / "01.mp3").exists()
    assert Request.get_by_id(request.id).status == "downloaded"
    assert any(f"is {downloads}/complete/Way of Kings here (REMOTE_PATH_MAPPINGS)" in m for m in event_messages(job))


def test_an_unmapped_client_path_fails_with_a_message_naming_the_setting(dirs, use_settings):
    downloads, media = dirs
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media))
    job = run_organize(make_request(), "/seedbox/data/torrents/Way of Kings")
    assert job.status == "failed" and "outside DOWNLOAD_DIR" in job.error_message
    assert "REMOTE_PATH_MAPPINGS" in job.error_message

    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), REMOTE_PATH_MAPPINGS="/seedbox=/srv/other")
    job = run_organize(make_request(title="Other"), "/seedbox/Way of Kings")
    assert job.status == "failed" and "/srv/other/Way of Kings (the client reports /seedbox/Way of Kings)" \
        in job.error_message and "REMOTE_PATH_MAPPINGS" in job.error_message


# --- organize_files: Plex refresh -----------------------------------------------------------------------

@pytest.fixture
def plex():
    fake = FakePlex().start()
    yield fake
    fake.stop()


def _check_jobs():
    return list(Job.select().where(Job.type == "plex_recently_added_check"))


def test_an_import_refreshes_the_books_folder_and_queues_a_check_a_minute_later(dirs, use_settings, plex):
    downloads, media = dirs
    plex.locations = {str(media): str(media)}  # Plex sees the library under the workers' own path
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), PLEX_URL=plex.url, PLEX_TOKEN=plex.token,
                 PLEX_LIBRARY_ID=plex.section)
    request = make_request()
    job = run_organize(request, _book(downloads / "Way of Kings"))
    assert job.status == "completed" and Request.get_by_id(request.id).status == "downloaded"
    target = media / "Brandon Sanderson" / "The Way of Kings"
    assert plex.refreshes == [{"path": str(target), "token": plex.token}]
    [check] = _check_jobs()
    assert check.status == "delayed" and check.request_id is None
    assert 55 <= (check.run_at - check.created_at).total_seconds() <= 65
    assert job.result["plexCheckJobId"] == str(check.id)
    assert not event_messages(job, "warn")


def test_the_check_delay_is_a_setting(dirs, use_settings, plex):
    downloads, media = dirs
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), PLEX_URL=plex.url, PLEX_TOKEN=plex.token,
                 PLEX_LIBRARY_ID=plex.section, PLEX_REFRESH_CHECK_DELAY_SECONDS=300)
    run_organize(make_request(), _book(downloads / "Way of Kings"))
    [check] = _check_jobs()
    assert 295 <= (check.run_at - check.created_at).total_seconds() <= 305


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("where", ["down", "wrong token"])
def test_plex_down_is_a_warning_and_the_import_still_succeeds(dirs, use_settings, plex, where):
    downloads, media = dirs
    url = f"http://127.0.0.1:{_closed_port()}" if where == "down" else plex.url
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), PLEX_URL=url,
                 PLEX_TOKEN="wrong" if where == "wrong token" else plex.token, PLEX_LIBRARY_ID=plex.section)
    request = make_request()
    job = run_organize(request, _book(downloads / "Way of Kings"))
    assert job.status == "completed" and job.result["success"] is True
    assert Request.get_by_id(request.id).status == "downloaded"
    assert (media / "Brandon Sanderson" / "The Way of Kings" / "01.mp3").exists()
    warnings = event_messages(job, "warn")
    assert len(warnings) == 1 and "Plex refresh" in warnings[0]
    assert _check_jobs() == [] and plex.refreshes == []


def test_without_plex_there_is_no_refresh_and_no_check(dirs, use_settings, plex):
    downloads, media = dirs
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), PLEX_URL=plex.url, PLEX_TOKEN=plex.token)
    job = run_organize(make_request(), _book(downloads / "Way of Kings"))  # PLEX_LIBRARY_ID unset: not configured
    assert job.status == "completed" and job.result["plexCheckJobId"] is None
    assert plex.requests == [] and _check_jobs() == []
    assert not event_messages(job, "warn")


# --- Plex path mappings (PLEX_PATH_MAPPINGS) ------------------------------------------------------------

DOCKER = "/mnt/media=/data/audiobooks;/mnt/media/kids=/data/kids;/srv/win=P:\\Audiobooks"
BOOK = "Brandon Sanderson/The Way of Kings"


@pytest.mark.parametrize("local,locations,path", [
    (f"/mnt/media/{BOOK}", ["/data/audiobooks"], f"/data/audiobooks/{BOOK}"),
    (f"/mnt/media/{BOOK}", ["/data/audiobooks/"], f"/data/audiobooks/{BOOK}"),        # a trailing slash
    (f"/mnt/media/{BOOK}", ["/data/podcasts", "/data/audiobooks"], f"/data/audiobooks/{BOOK}"),
    (f"/mnt/media/{BOOK}", ["/data"], f"/data/audiobooks/{BOOK}"),                    # a Location above
    ("/mnt/media/kids/Author/Book", ["/data/kids"], "/data/kids/Author/Book"),          # longest prefix
    (f"/mnt/media/{BOOK}", ["/data/audio"], None),                                      # whole components
    (f"/mnt/media/{BOOK}", ["/data/audiobooks/Other Author"], None),
    (f"/mnt/media/{BOOK}", ["/mnt/media"], None),     # mapped: Plex does not see the local name
    (f"/mnt/media2/{BOOK}", ["/mnt/media2"], f"/mnt/media2/{BOOK}"),                    # unmapped, same path
    (f"/mnt/media2/{BOOK}", ["/data/audiobooks"], None),
    (f"/mnt/media/{BOOK}", [], None),                                                   # no folders at all
    ("/srv/win/Author/Book", ["P:\\Audiobooks"], "P:\\Audiobooks\\Author\\Book"),      # Plex on Windows
    ("/srv/win/Author/Book", ["p:/audiobooks"], "P:\\Audiobooks\\Author\\Book"),
])
def test_the_refresh_names_the_folder_as_plex_sees_it_inside_the_sections_folders(local, locations, path):
    plan = plan_refresh(local, parse_plex_mappings(DOCKER), locations)
    assert plan.path == path
    if path is None:
        assert plan.warning is not None and "PLEX_PATH_MAPPINGS" in plan.warning and local in plan.warning
    else:
        assert plan == RefreshPlan(path, path, None)


def test_the_warning_suggests_the_mapping_for_the_sections_folder():
    warning = library_warning("/mnt/media", (), ["/data/audiobooks"])
    assert warning is not None and "PLEX_PATH_MAPPINGS=/mnt/media=/data/audiobooks" in warning
    assert library_warning("/mnt/media", parse_plex_mappings("/mnt/media=/data/audiobooks"),
                           ["/data/audiobooks"]) is None
    mapped_wrong = library_warning("/mnt/media", parse_plex_mappings("/mnt/media=/data/books"), ["/data/audiobooks"])
    assert mapped_wrong is not None and "mapped by PLEX_PATH_MAPPINGS to /data/books" in mapped_wrong


@pytest.mark.parametrize("raw,problem", [
    ("/mnt/media", "not local=plex"),
    ("/mnt/media=", "not local=plex"),
    ("mnt/media=/data", "the local path 'mnt/media' must be absolute"),
    ("/mnt/media=data", "the plex path 'data' must be absolute"),
    ("/mnt/media=/data/../etc", "'..'"),
    ("/a=/data;/b=/data/", "the plex path '/data/' is mapped twice"),
])
def test_bad_plex_mappings_stop_the_start_naming_the_setting(raw, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_plex_mappings(raw)
    with pytest.raises(SettingsError, match="PLEX_PATH_MAPPINGS"):
        load_settings({"PLEX_PATH_MAPPINGS": raw}, env_file=None)


def test_plex_mappings_are_read_local_first_and_a_missing_local_folder_is_a_warning(tmp_path):
    settings = load_settings({"PLEX_PATH_MAPPINGS": f" {tmp_path}=/data/audiobooks ; /absent=/data/x ;"},
                             env_file=None)
    assert settings.plex_path_mappings == (PathMapping("/data/audiobooks", str(tmp_path)),
                                           PathMapping("/data/x", "/absent"))
    assert settings.remote_path_mappings == ()
    assert settings_warnings(settings) == [
        "PLEX_PATH_MAPPINGS: the local folder /absent of mapping /absent=/data/x does not exist (not mounted yet?)"]


def test_the_plex_client_reads_the_sections_folders(plex):
    plex.locations = {"/data/audiobooks": None, "/data/more audiobooks": None}
    client = PlexClient(plex.url, plex.token)
    assert client.section_locations(plex.section) == ["/data/audiobooks", "/data/more audiobooks"]
    with pytest.raises(PermanentServiceError, match="PLEX_LIBRARY_ID"):
        client.section_locations("99")


def _scanned(plex, count: int) -> list[dict]:
    wait_for(lambda: len(plex.scans) >= count, 5, message=f"{count} Plex scan(s)")
    return plex.scans


def test_the_fake_plex_scans_only_inside_its_sections_folders(tmp_path, plex):
    """As Plex: 200 for any path, nothing scanned outside the Locations, only the folder asked for inside."""
    volume = tmp_path / "volume"
    for book in ("A/One", "A/Two", "B/Three"):
        _book(volume / book)
    plex.locations, plex.refresh_delay = {"/data/audiobooks": str(volume)}, 0.05
    client = PlexClient(plex.url, plex.token)
    client.refresh(plex.section, str(volume / "A" / "One"))   # the path as this machine sees it: outside
    client.refresh(plex.section, "/data/audiobooks2/A/One")   # a sibling folder, not inside
    # two timers: under load the second scan may finish first
    assert sorted(_scanned(plex, 2), key=lambda scan: scan["path"]) == sorted(
        [{"path": str(volume / "A" / "One"), "added": []}, {"path": "/data/audiobooks2/A/One", "added": []}],
        key=lambda scan: scan["path"])
    assert plex.items == []
    client.refresh(plex.section, "/data/audiobooks/A/One")
    assert _scanned(plex, 3)[-1] == {"path": "/data/audiobooks/A/One", "added": ["One"]}
    assert [(i["title"], i["parentTitle"]) for i in plex.items] == [("One", "A")]
    client.refresh(plex.section)                               # the whole section: what is new
    assert _scanned(plex, 4)[-1] == {"path": None, "added": ["Two", "Three"]}
    assert [(i.title, i.author) for i in client.albums(plex.section)] == [("One", "A"), ("Two", "A"), ("Three", "B")]


def _recently_added_check() -> None:
    """Run a Recently Added Check now (the one the import queued waits a minute)."""
    job_id = add_job("plex_recently_added_check", {})
    drain(queue_names_for_group("plex_recently_added_check"),
          until=lambda: Job.get_by_id(job_id).status in ("completed", "failed"))
    assert Job.get_by_id(job_id).status == "completed"


def test_an_import_refreshes_the_folder_by_its_plex_path_and_plex_really_scans_it(dirs, use_settings, plex):
    """Plex in another container: the workers write MEDIA_DIR, Plex sees it as /data/audiobooks."""
    downloads, media = dirs
    plex.locations = {"/data/audiobooks": str(media)}
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), PLEX_URL=plex.url, PLEX_TOKEN=plex.token,
                 PLEX_LIBRARY_ID=plex.section, PLEX_PATH_MAPPINGS=f"{media}=/data/audiobooks")
    request = make_request()
    job = run_organize(request, _book(downloads / "Way of Kings"))
    assert job.status == "completed" and Request.get_by_id(request.id).status == "downloaded"
    assert plex.refreshes == [{"path": f"/data/audiobooks/{BOOK}", "token": plex.token}]
    assert _scanned(plex, 1) == [{"path": f"/data/audiobooks/{BOOK}", "added": ["The Way of Kings"]}]
    assert not event_messages(job, "warn")
    assert any(f"/data/audiobooks/{BOOK} ({media / BOOK} here, PLEX_PATH_MAPPINGS)" in m for m in event_messages(job))
    _recently_added_check()
    assert Request.get_by_id(request.id).status == "available"


def test_a_missing_plex_mapping_refreshes_the_whole_section_with_a_warning_naming_the_setting(dirs, use_settings,
                                                                                             plex):
    downloads, media = dirs
    plex.locations = {"/data/audiobooks": str(media)}
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), PLEX_URL=plex.url, PLEX_TOKEN=plex.token,
                 PLEX_LIBRARY_ID=plex.section)
    request = make_request()
    job = run_organize(request, _book(downloads / "Way of Kings"))
    assert job.status == "completed" and job.result["plexCheckJobId"]
    assert plex.refreshes == [{"path": None, "token": plex.token}]  # never a path Plex would not scan
    assert _scanned(plex, 1) == [{"path": None, "added": ["The Way of Kings"]}]
    [warning] = event_messages(job, "warn")
    assert str(media / BOOK) in warning and "(/data/audiobooks)" in warning
    assert f"PLEX_PATH_MAPPINGS={media}=/data/audiobooks" in warning
    _recently_added_check()
    assert Request.get_by_id(request.id).status == "available"

"""Health checks that say how to fix it, on /admin/system, GET /api/admin/health and in the
banner: free space on DOWNLOAD_DIR and MEDIA_DIR, the download client's save path not visible here
(REMOTE_PATH_MAPPINGS), MEDIA_DIR outside Plex's folders (PLEX_PATH_MAPPINGS,
tests/integrations/test_integrations_health.py
and here for its fix), indexers Prowlarr reports failing, Redis without persistence, no live worker for queued
jobs. The rules are pure (table tests); the checks go through HTTP against the fake Prowlarr and Plex, the REAL
qbittorrent-nox and transmission-daemon, and a private redis-server."""
from __future__ import annotations

import subprocess
import time

import pytest
import redis

from app.integrations import health
from app.pipeline import health_rules
from app.pipeline.health_rules import ERROR, GIB, OK, WARNING
from app.pipeline.torrent_placement import save_folder
from app.reports import system_health

from builders import BEARER
from daemons import free_port
from helpers import drain, wait_for

MIB = 1024 ** 2
ODD = "<i>odd&folder"  # a folder name with markup: every page shows it as text


# --- the rules (pure) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("free,total,book,level", [
    (500 * GIB, 1000 * GIB, 0, OK),
    (101 * GIB, 1000 * GIB, 0, OK),
    (99 * GIB, 1000 * GIB, 0, WARNING),        # under 10 % of the disk
    (6 * GIB, 20 * GIB, 0, OK),
    (4 * GIB, 20 * GIB, 0, WARNING),           # under 5 GiB
    (GIB, 20 * GIB, 0, WARNING),               # exactly 1 GiB: not yet an error
    (GIB - 1, 20 * GIB, 0, ERROR),             # under 1 GiB
    (10 * GIB, 20 * GIB, 5 * GIB, OK),         # a copy needs the book twice: 10 GiB is enough ...
    (10 * GIB - 1, 20 * GIB, 5 * GIB, ERROR),  # ... a byte less is not
    (400 * GIB, 1000 * GIB, 300 * GIB, ERROR),
])
def test_free_space_levels(free, total, book, level):
    finding = health_rules.disk_space("MEDIA_DIR", "/mnt/media", free, total, book)
    assert finding.level == level
    assert finding.message.startswith("MEDIA_DIR (/mnt/media) has ")
    assert (finding.fix is None) == (level == OK)
    if level != OK:
        assert "MEDIA_DIR" in finding.fix


@pytest.mark.parametrize("config,level,says", [
    ({"appendonly": "yes", "save": ""}, OK, "append-only file"),
    ({"appendonly": "no", "save": "3600 1 300 100"}, WARNING, "only RDB snapshots (save 3600 1 300 100)"),
    ({"appendonly": "no", "save": ""}, WARNING, "no persistence"),
    ({}, WARNING, "no persistence"),
])
def test_redis_persistence(config, level, says):
    finding = health_rules.redis_persistence(config)
    assert finding.level == level and says in finding.message
    assert (finding.fix is None) == (level == OK)
    if finding.fix:
        assert "appendonly yes" in finding.fix


GROUPS = {"search_indexers": "search_indexers", "noop": "maintenance", "cleanup_job_history": "maintenance"}


@pytest.mark.parametrize("waiting,live,level,fix", [
    ({}, {}, OK, None),
    ({"noop": 0}, {}, OK, None),                                      # nothing queued: no worker needed
    ({"noop": 2}, {"maintenance": 1}, OK, None),
    ({"noop": 2}, {"search_indexers": 3}, ERROR, "python -m workers maintenance"),
    ({"noop": 1, "cleanup_job_history": 1, "search_indexers": 4}, {}, ERROR,
     "python -m workers maintenance search_indexers"),
])
def test_no_live_worker_for_queued_jobs(waiting, live, level, fix):
    finding = health_rules.idle_job_types(waiting, GROUPS, live)
    assert finding.level == level
    if fix:
        assert fix in finding.fix
        for job_type, count in waiting.items():
            assert f"{job_type} ({count} queued)" in finding.message


@pytest.mark.parametrize("category_path,download_dir,default,folder,where", [
    ("/srv/books", "/downloads", "/data", "/srv/books", "the save path of category 'readmeabook'"),
    ("books", None, "/data", "/data/books", "the save path of category 'readmeabook'"),  # relative: under default
    ("D:\\Books", None, "C:\\Torrents", "D:\\Books", "the save path of category 'readmeabook'"),
    ("", "/downloads", "/data", "/downloads", "DOWNLOAD_DIR"),
    ("", None, "/data", "/data", "the client's default save path"),
])
def test_where_the_client_saves(category_path, download_dir, default, folder, where):
    assert save_folder("readmeabook", category_path, download_dir, default) == (folder, where)


@pytest.mark.parametrize("exists,mapped,level,says", [
    (True, True, OK, "seen here as /mnt/seedbox"),
    (False, False, WARNING, "saves into /downloads (DOWNLOAD_DIR) which is not a folder"),
    (False, True, WARNING, "mapped to /mnt/seedbox, which is not a folder"),
])
def test_save_path_visibility(exists, mapped, level, says):
    finding = health_rules.save_path_visible("qBittorrent", "/downloads", "DOWNLOAD_DIR", "/mnt/seedbox"
                                             if mapped else "/downloads", exists, mapped)
    assert finding.level == level and says in finding.message
    if level != OK:
        assert finding.fix == "Add REMOTE_PATH_MAPPINGS=/downloads=<the same folder as mounted here> (client=local)"


@pytest.mark.parametrize("failing,level,says", [
    ([], OK, "no indexer"),
    ([("MyAudioTracker", "2026-12-06T08:00:00Z")], WARNING, "MyAudioTracker (disabled until 2026-12-06T08:00:00Z)"),
    ([("A", None), ("B", None)], WARNING, "failing indexers: A, B;"),
])
def test_failing_indexers(failing, level, says):
    finding = health_rules.failing_indexers(failing)
    assert finding.level == level and says in finding.message


# --- through HTTP -----------------------------------------------------------------------------------------

def _checks(client) -> dict:
    response = client.get("/api/admin/health", headers=BEARER)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {c["name"]: c for c in response.get_json()["checks"]}


def _banner(page: str) -> str:
    return page.split("<main>")[1].split("<h1>")[0]


def test_the_health_checks_need_an_admin(client):
    assert client.get("/api/admin/health").status_code == 401
    assert client.get("/admin/system").status_code == 302


def test_free_space_checks_name_the_folder_and_a_copy_needs_the_book_twice(admin_client, use_settings, tmp_path,
                                                                        flask_app):
    from app.models import Audiobook, DownloadHistory, Request

    downloads, media = tmp_path / "downloads", tmp_path / ODD
    downloads.mkdir()
    media.mkdir()
    flask_app.config["SETTINGS"] = use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media))
    checks = _checks(admin_client)
    assert checks["download_dir_space"]["level"] in (OK, WARNING)  # this machine's real disk
    assert checks["download_dir_space"]["message"].startswith(f"DOWNLOAD_DIR ({downloads}) has ")
    request = Request.create(audiobook=Audiobook.create(title="Oathbringer", author="Brandon Sanderson"),
                             status="downloading")
    # a book bigger than half of the free space: the import's copy cannot fit, whatever the disk
    DownloadHistory.create(request=request, torrent_name="Oathbringer", torrent_size_bytes=2 ** 60,
                           download_status="downloading", download_client_id="ab" * 20)
    checks = _checks(admin_client)
    for name, setting in (("download_dir_space", "DOWNLOAD_DIR"), ("media_dir_space", "MEDIA_DIR")):
        assert checks[name]["level"] == ERROR
        assert "the largest book in flight (1073741824.0 GiB) needs 2147483648.0 GiB to be copied" \
            in checks[name]["message"]
        assert checks[name]["fix"].endswith(f"or point {setting} at a larger disk")
    page = admin_client.get("/admin/system").get_data(as_text=True)
    assert 'data-check="media_dir_space" data-level="error"' in page
    assert ODD not in page and "&lt;i&gt;odd&amp;folder" in page
    banner = _banner(admin_client.get("/admin/logs").get_data(as_text=True))
    assert 'class="flash health-banner" role="alert" data-check="media_dir_space"' in banner
    assert "Fix: Free space on the disk of" in banner
    DownloadHistory.update(download_status="removed").execute()  # nothing in flight: the real disk decides again
    assert _checks(admin_client)["media_dir_space"]["level"] in (OK, WARNING)


def test_a_missing_folder_is_an_error(admin_client, flask_app, use_settings, tmp_path):
    flask_app.config["SETTINGS"] = use_settings(MEDIA_DIR=str(tmp_path / "not-mounted"))
    check = _checks(admin_client)["media_dir_space"]
    assert check["level"] == ERROR and "is not a folder on this machine" in check["message"]
    assert check["fix"] == f"Create or mount {tmp_path / 'not-mounted'}, or correct MEDIA_DIR"


def test_queued_jobs_without_a_live_worker_are_an_error_until_a_worker_takes_them(admin_client, redis_conn):
    from app.jobs.queues import queue_names_for_group
    from app.jobs.service import add_job

    assert _checks(admin_client)["workers"]["level"] == OK
    add_job("noop", {})
    check = _checks(admin_client)["workers"]
    assert check["level"] == ERROR and check["message"] == "No live worker for noop (1 queued)"
    assert check["fix"] == "Start the workers: python -m workers maintenance (or python -m workers --all)"
    assert 'data-check="workers"' in _banner(admin_client.get("/admin/logs").get_data(as_text=True))
    drain(queue_names_for_group("maintenance"))  # a worker took it
    assert _checks(admin_client)["workers"]["level"] == OK
    assert 'data-check="workers"' not in _banner(admin_client.get("/admin/logs").get_data(as_text=True))


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own, without persistence (CONFIG SET on the shared one would touch
    every other test run)."""
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    connection = redis.Redis(port=port)
    wait_for(lambda: _pings(connection), 10, message="the private redis-server")
    yield f"redis://127.0.0.1:{port}/0", connection
    connection.close()
    process.kill()  # a throwaway server: nothing of it is kept
    process.wait(10)


def _pings(connection) -> bool:
    try:
        return bool(connection.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.slow
def test_redis_without_append_only_file_warns_until_aof_is_on(app_with_redis):
    url, connection, client = app_with_redis
    check = _checks(client)["redis_persistence"]
    assert check["level"] == WARNING and "no persistence" in check["message"]
    assert check["fix"].startswith("Turn on AOF: redis-cli CONFIG SET appendonly yes")
    connection.config_set("save", "3600 1")
    assert "only RDB snapshots (save 3600 1)" in _checks(client)["redis_persistence"]["message"]
    connection.config_set("appendonly", "yes")
    assert _checks(client)["redis_persistence"]["level"] == OK


@pytest.fixture
def app_with_redis(private_redis, use_settings):
    from app import create_app

    url, connection = private_redis
    flask_app = create_app(use_settings(REDIS_URL=url))
    flask_app.config.update(TESTING=True)
    return url, connection, flask_app.test_client()


def test_prowlarr_names_its_failing_indexers_with_the_fix(app_with_prowlarr, prowlarr, bearer):
    client = app_with_prowlarr
    reply = client.post("/api/admin/integrations/prowlarr/test", headers=bearer).get_json()["integration"]
    assert reply["ok"] is True and reply["warning"] is None and reply["fix"] is None
    assert "/api/v1/indexerstatus" in prowlarr.requested and "/api/v1/indexer" not in prowlarr.requested
    prowlarr.indexers = {4: "MyAudioTracker", 7: "BookTracker"}
    prowlarr.failing = {7: "2026-12-06T09:00:00Z"}
    reply = client.post("/api/admin/integrations/prowlarr/test", headers=bearer).get_json()["integration"]
    assert reply["ok"] is True  # Prowlarr answers; one of its indexers does not
    assert reply["warning"] == ("Prowlarr reports failing indexers: BookTracker (disabled until "
                                "2026-12-06T09:00:00Z); searches skip them")
    assert reply["fix"] == "In Prowlarr → Indexers, test each one and fix its settings (or disable it)"
    assert prowlarr.api_key not in str(reply)


@pytest.fixture
def app_with_prowlarr(flask_app, use_settings, prowlarr, redis_conn):
    flask_app.config["SETTINGS"] = use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    return flask_app.test_client()


def test_the_banner_shows_the_fix_of_an_integration_warning(admin_client, flask_app, use_settings, prowlarr,
                                                            redis_conn):
    from app.schedules.process import SchedulerProcess

    flask_app.config["SETTINGS"] = use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    prowlarr.failing = {4: "2026-12-06T09:00:00Z"}
    SchedulerProcess().run_integration_checks()  # the scheduler's duty: integrations and the system checks
    banner = _banner(admin_client.get("/admin/logs").get_data(as_text=True))
    assert 'data-integration="prowlarr"' in banner and "MyAudioTracker (disabled until" in banner
    assert "Fix: In Prowlarr → Indexers" in banner
    assert 'data-check="redis_persistence"' in banner  # stored by the same duty (the test Redis has no AOF)
    assert system_health.load(redis_conn)


@pytest.mark.slow  # the daemon is looked up by name: its fixture's markers are not added
@pytest.mark.parametrize("kind", ["qbittorrent", "transmission"])
def test_a_save_path_not_visible_here_names_remote_path_mappings(kind, request, use_settings, tmp_path, redis_conn):
    """The client's default save path (no DOWNLOAD_DIR) as REMOTE_PATH_MAPPINGS maps it: a mapping to a
    folder that is not here warns with the fix; a mapping to one that is clears it."""
    daemon = request.getfixturevalue(kind)
    base = {"DOWNLOAD_CLIENT": kind, "DOWNLOAD_CLIENT_URL": daemon.url,
            "DOWNLOAD_CLIENT_USERNAME": daemon.username, "DOWNLOAD_CLIENT_PASSWORD": daemon.password}
    result = health.check("download_client", use_settings(**base))
    assert result.ok is True and result.warning is None, result
    nowhere = tmp_path / "seedbox-not-mounted"
    result = health.check("download_client", use_settings(
        REMOTE_PATH_MAPPINGS=f"{daemon.download_dir}={nowhere}", **base))
    assert result.ok is True
    assert result.warning == (f"{'qBittorrent' if kind == 'qbittorrent' else 'Transmission'} saves into "
                              f"{daemon.download_dir} (the client's default save path), mapped to {nowhere}, "
                              f"which is not a folder on this machine: finished downloads cannot be imported")
    assert result.fix == (f"Add REMOTE_PATH_MAPPINGS={daemon.download_dir}=<the same folder as mounted here> "
                          f"(client=local)")
    here = tmp_path / "seedbox"
    here.mkdir()
    result = health.check("download_client", use_settings(REMOTE_PATH_MAPPINGS=f"{daemon.download_dir}={here}",
                                                           **base))
    assert result.ok is True and result.warning is None


def test_a_qbittorrent_category_save_path_is_the_one_checked(qbittorrent, use_settings, tmp_path, redis_conn):
    from app.integrations.qbittorrent import QBittorrentClient

    client = QBittorrentClient(qbittorrent.url, qbittorrent.username, qbittorrent.password)
    category = f"health-{time.monotonic_ns()}"
    seedbox = "/srv/seedbox-only/audiobooks"
    response = client._call("POST", "torrents/createCategory", data={"category": category, "savePath": seedbox})
    assert response.status_code == 200, response.text
    base = {"DOWNLOAD_CLIENT": "qbittorrent", "DOWNLOAD_CLIENT_URL": qbittorrent.url,
            "DOWNLOAD_CLIENT_USERNAME": qbittorrent.username, "DOWNLOAD_CLIENT_PASSWORD": qbittorrent.password,
            "DOWNLOAD_CLIENT_CATEGORY": category, "DOWNLOAD_DIR": str(qbittorrent.download_dir)}
    result = health.check("download_client", use_settings(**base))
    assert result.warning.startswith(f"qBittorrent saves into {seedbox} (the save path of category {category!r}) "
                                     f"which is not a folder on this machine")
    assert result.fix.startswith(f"Add REMOTE_PATH_MAPPINGS={seedbox}=")
    result = health.check("download_client", use_settings(
        REMOTE_PATH_MAPPINGS=f"{seedbox}={qbittorrent.download_dir}", **base))
    assert result.warning is None


def test_a_failing_extra_question_is_a_warning_not_an_outage(app_with_prowlarr, prowlarr, bearer):
    """Prowlarr answers its version but not /api/v1/indexerstatus (an older one, a hiccup): still reachable."""
    prowlarr.indexer_status_code = 500
    reply = app_with_prowlarr.post("/api/admin/integrations/prowlarr/test", headers=bearer).get_json()
    assert reply["integration"]["ok"] is True
    assert reply["integration"]["warning"].startswith("It answered, but not which indexers are failing: ")
    assert "500" in reply["integration"]["warning"] and prowlarr.api_key not in str(reply)

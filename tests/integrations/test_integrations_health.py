"""Integrations health: checks of Prowlarr, the download client and Plex through HTTP
against the fakes and the real torrent daemons, the scheduler's duty, the System page and the banner."""
from __future__ import annotations

import re
import socket
import time

import pytest

from app.integrations import health

from builders import BEARER
from helpers import ADMIN_PASSWORD

HOSTILE = '<script>window.__pwned = 1</script>'


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def plex():
    from fakes.plex import FakePlex

    fake = FakePlex().start()
    fake.items.append(fake.album("The Way of Kings", "Brandon Sanderson"))
    yield fake
    fake.stop()


@pytest.fixture
def app_with(use_settings):
    """app_with(PLEX_URL=…) → (flask app, client): the app reads its settings once, at creation. The client
    is logged in with `login=True` (pages); API calls send the bearer token (a login costs a password hash)."""
    from app import create_app

    def build(login: bool = False, **overrides):
        settings = use_settings(**overrides)
        flask_app = create_app(settings)
        flask_app.config.update(TESTING=True)
        client = flask_app.test_client()
        if not login:
            return flask_app, client
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                          client.get("/login").get_data(as_text=True)).group(1)
        assert client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                           "csrf_token": token}).status_code == 302
        return flask_app, client

    return build


def _csrf(client, path="/admin/system") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _by_name(client) -> dict:
    response = client.get("/api/admin/integrations", headers=BEARER)
    assert response.status_code == 200, response.get_data(as_text=True)
    rows = response.get_json()
    assert [r["name"] for r in rows] == ["prowlarr", "download_client", "plex"]
    return {r["name"]: r for r in rows}


# --- pure rules -------------------------------------------------------------------------------------

NOW = 1_800_000_000.0


@pytest.mark.parametrize("previous,due", [
    (None, True),
    (health.CheckResult("plex", "Plex", True, True, checked_at=NOW - 5), True),
    (health.CheckResult("plex", "Plex", True, False, error="down", checked_at=NOW - 5), True),
    (health.CheckResult("download_client", "qBittorrent", True, False, checked_at=NOW - 5, refused=True), False),
    (health.CheckResult("download_client", "qBittorrent", True, False,
                        checked_at=NOW - health.REFUSED_RECHECK_SECONDS, refused=True), True),
])
def test_the_scheduler_backs_off_only_after_a_credentials_refusal(previous, due):
    assert health.periodic_check_due(previous, NOW) is due


@pytest.mark.parametrize("rows,names", [
    ([], []),
    ([{"name": "plex", "configured": True, "ok": True}], []),
    ([{"name": "plex", "configured": True, "ok": None}], []),        # not checked yet: no banner
    ([{"name": "plex", "configured": False, "ok": None}], []),
    ([{"name": "plex", "configured": True, "ok": False}, {"name": "prowlarr", "configured": True, "ok": False}],
     ["plex", "prowlarr"]),
])
def test_the_banner_names_configured_integrations_whose_last_check_failed(rows, names):
    assert [r["name"] for r in health.failing(rows)] == names


def test_error_texts_never_carry_secrets():
    from app.integrations.errors import TransientServiceError

    exc = TransientServiceError(
        "Plex", "GET http://u:hunter2pw@plex:32400/identity?X-Plex-Token=tok-123: cannot connect")
    text = health.error_text(exc, ("tok-123",))
    assert text.startswith("GET http://") and "cannot connect" in text
    assert "hunter2pw" not in text and "tok-123" not in text
    assert len(health.error_text(RuntimeError("x" * 1000))) <= health.MAX_ERROR_CHARS


# --- checks through HTTP --------------------------------------------------------------------------

def test_unconfigured_integrations_are_reported_without_a_network_call(app_with, redis_conn, monkeypatch, bearer):
    _, client = app_with(login=True)
    called = []
    monkeypatch.setattr(health, "PROBES", {n: lambda *a, n=n: called.append(n) for n in health.NAMES})
    for name in health.NAMES:
        reply = client.post(f"/api/admin/integrations/{name}/test", headers=bearer).get_json()
        assert reply["integration"]["configured"] is False and reply["integration"]["ok"] is None
    assert called == []
    rows = _by_name(client)
    assert all(r["configured"] is False and r["ok"] is None and r["error"] is None for r in rows.values())
    page = client.get("/admin/system").get_data(as_text=True)
    assert page.count('data-state="unconfigured"') == 3


def test_reachable_fakes_answer_with_their_version_and_latency(app_with, prowlarr, plex, redis_conn, bearer):
    _, client = app_with(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key, PLEX_URL=plex.url,
                         PLEX_TOKEN=plex.token, PLEX_LIBRARY_ID=plex.section)
    assert _by_name(client)["prowlarr"]["ok"] is None  # configured, not checked yet
    for name, version in (("prowlarr", prowlarr.version), ("plex", "1.40")):
        reply = client.post(f"/api/admin/integrations/{name}/test", headers=bearer)
        assert reply.status_code == 200
        result = reply.get_json()["integration"]
        assert result["configured"] is True and result["ok"] is True, result
        assert result["version"] == version and result["error"] is None
        assert isinstance(result["latencyMs"], int) and 0 <= result["latencyMs"] < 5000
        assert result["checkedAt"].endswith("Z")
    rows = _by_name(client)
    assert rows["prowlarr"]["ok"] is True and rows["plex"]["version"] == "1.40"
    assert rows["download_client"] == {**rows["download_client"], "configured": False, "ok": None}
    # the key travelled in the header (never a query), the token was checked beyond /identity
    assert prowlarr.unauthorized_count == 0
    assert "/library/sections/3/all" in plex.requests


def test_a_stopped_service_or_closed_port_fails_with_a_clear_error_and_no_secret(app_with, prowlarr, plex,
                                                                                  redis_conn, bearer):
    plex.stop()
    password = "s3cret-qbt-pw"
    _, client = app_with(login=True, PROWLARR_URL=f"http://127.0.0.1:{_closed_port()}",
                         PROWLARR_API_KEY=prowlarr.api_key,
                         PLEX_URL=plex.url, PLEX_TOKEN=plex.token, PLEX_LIBRARY_ID="3",
                         DOWNLOAD_CLIENT_URL=f"http://127.0.0.1:{_closed_port()}", DOWNLOAD_CLIENT_USERNAME="admin",
                         DOWNLOAD_CLIENT_PASSWORD=password)
    for name in health.NAMES:
        result = client.post(f"/api/admin/integrations/{name}/test", headers=bearer).get_json()["integration"]
        assert result["configured"] is True and result["ok"] is False and result["version"] is None, result
        assert "cannot connect" in result["error"], result
        body = str(result)
        for secret in (prowlarr.api_key, plex.token, password):
            assert secret not in body
    page = client.get("/admin/logs").get_data(as_text=True)
    assert page.count('class="flash health-banner"') == 3
    for secret in (prowlarr.api_key, plex.token, password):
        assert secret not in page


def test_a_wrong_key_is_a_refusal_naming_the_setting(app_with, prowlarr, redis_conn, bearer):
    _, client = app_with(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY="wrong-key-0000")
    result = client.post("/api/admin/integrations/prowlarr/test", headers=bearer).get_json()["integration"]
    assert result["ok"] is False and "401" in result["error"] and "PROWLARR_API_KEY" in result["error"]
    assert "wrong-key-0000" not in result["error"]
    assert health.load(redis_conn)["prowlarr"].refused is True  # the scheduler backs off


@pytest.mark.slow
def test_a_slow_service_times_out(app_with, prowlarr, redis_conn, monkeypatch, bearer):
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.5)
    prowlarr.status_delay = 2.0
    _, client = app_with(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    started = time.monotonic()
    result = client.post("/api/admin/integrations/prowlarr/test", headers=bearer).get_json()["integration"]
    assert time.monotonic() - started < 1.8
    assert result["ok"] is False and "timed out" in result["error"]


def test_the_real_download_client_reports_its_version(app_with, daemon, redis_conn, bearer):
    _, client = app_with(DOWNLOAD_CLIENT=daemon.kind, DOWNLOAD_CLIENT_URL=daemon.url,
                         DOWNLOAD_CLIENT_USERNAME=daemon.username, DOWNLOAD_CLIENT_PASSWORD=daemon.password)
    result = client.post("/api/admin/integrations/download_client/test", headers=bearer).get_json()["integration"]
    assert result["ok"] is True, result
    assert result["label"] == ("qBittorrent" if daemon.kind == "qbittorrent" else "Transmission")
    # qBittorrent answers v4.5.2-style, Transmission "3.00 (bb6b5a062e)"-style
    pattern = r"v?\d+\.\d+(\.\d+)*" if daemon.kind == "qbittorrent" else r"\d+\.\d+.*"
    assert re.fullmatch(pattern, result["version"]), result["version"]
    # a wrong password is a clear refusal without the password
    _, client = app_with(DOWNLOAD_CLIENT=daemon.kind, DOWNLOAD_CLIENT_URL=daemon.url,
                         DOWNLOAD_CLIENT_USERNAME=daemon.username, DOWNLOAD_CLIENT_PASSWORD="not-the-password-42")
    result = client.post("/api/admin/integrations/download_client/test", headers=bearer).get_json()["integration"]
    assert result["ok"] is False and "DOWNLOAD_CLIENT_PASSWORD" in result["error"], result
    assert "not-the-password-42" not in str(result)


def test_plex_warns_naming_plex_path_mappings_while_imports_land_outside_its_folders(app_with, plex, tmp_path,
                                                                                     redis_conn, bearer):
    """Plex in another container sees the library as /data/audiobooks: until PLEX_PATH_MAPPINGS says so, a
    refresh of a book's folder would scan nothing, and the health check says which setting fixes it."""
    from app.config import get_settings

    media = tmp_path / "media"
    media.mkdir()
    plex.locations = {"/data/audiobooks": str(media), f"/data/{HOSTILE}": None}  # Plex's text is escaped
    plex_settings = {"PLEX_URL": plex.url, "PLEX_TOKEN": plex.token, "PLEX_LIBRARY_ID": plex.section,
                     "MEDIA_DIR": str(media)}
    _, client = app_with(login=True, **plex_settings)
    health.run_periodic_checks(get_settings(), redis_conn)  # the scheduler's duty (the others: unconfigured)
    result = health.load(redis_conn)["plex"]
    assert result.ok is True and result.version == "1.40" and "/library/sections" in plex.requests
    assert "PLEX_PATH_MAPPINGS" in result.warning and str(media) in result.warning
    assert _by_name(client)["plex"]["warning"] == result.warning
    for path in ("/admin/logs", "/admin/system"):
        page = client.get(path).get_data(as_text=True)
        assert 'class="flash health-warning" role="alert" data-integration="plex"' in page, path
        assert f"PLEX_PATH_MAPPINGS={media}=/data/audiobooks" in page
        assert "health-banner" not in page  # it works: a warning, not "unavailable"
        assert HOSTILE not in page and "/data/&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert 'data-integration="plex" data-state="warning"' in client.get("/admin/system").get_data(as_text=True)

    _, client = app_with(login=True, PLEX_PATH_MAPPINGS=f"{media}=/data/audiobooks", **plex_settings)
    reply = client.post("/api/admin/integrations/plex/test", headers=bearer).get_json()["integration"]
    assert reply["ok"] is True and reply["warning"] is None
    page = client.get("/admin/system").get_data(as_text=True)
    assert 'data-integration="plex"' not in page.split("<main>")[1].split("<h1>")[0]  # no banner for Plex
    assert 'data-integration="plex" data-state="ok"' in page


def test_unknown_integrations_are_404(app_with, redis_conn, bearer):
    _, client = app_with(login=True)
    assert client.post("/api/admin/integrations/sonarr/test", headers=bearer).status_code == 404
    token = _csrf(client)
    assert client.post("/admin/system/integrations/sonarr/test", data={"csrf_token": token}).status_code == 404


# --- the scheduler's duty -----------------------------------------------------------------------------

def test_the_scheduler_duty_stores_every_result(app_with, prowlarr, plex, redis_conn):
    from app.schedules.process import INTEGRATIONS_EVERY_TICKS, SchedulerProcess

    _, client = app_with(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key, PLEX_URL=plex.url,
                         PLEX_TOKEN=plex.token, PLEX_LIBRARY_ID=plex.section)
    process = SchedulerProcess()
    process.run_integration_checks()
    stored = health.load(redis_conn)
    assert stored["prowlarr"].ok is True and stored["plex"].ok is True
    assert stored["download_client"].configured is False
    assert 0 < redis_conn.ttl(health.RESULTS_KEY) <= health.RESULTS_TTL_SECONDS
    rows = _by_name(client)
    assert rows["prowlarr"]["version"] == prowlarr.version

    # the tick runs it at start and then every minute, in a thread the tick does not wait for
    redis_conn.delete(health.RESULTS_KEY)
    assert INTEGRATIONS_EVERY_TICKS == 60
    process.ticks = 0
    process.tick()
    process.integration_checks.join(15)
    assert health.load(redis_conn)["plex"].ok is True


def test_one_failing_check_stores_the_others_and_a_failing_duty_skips_no_other(app_with, plex, redis_conn,
                                                                               monkeypatch):
    import app.schedules.process as scheduler_module
    from app.schedules.service import SCHEDULER_HEARTBEAT_KEY

    app_with(PLEX_URL=plex.url, PLEX_TOKEN=plex.token, PLEX_LIBRARY_ID=plex.section)
    from app.config import get_settings

    def checker(name, settings):
        if name == "prowlarr":
            raise RuntimeError("probe crashed")
        return health.check(name, settings)

    results = health.run_periodic_checks(get_settings(), redis_conn, checker=checker)
    assert [r.name for r in results] == list(health.NAMES)
    stored = health.load(redis_conn)
    assert stored["prowlarr"].ok is False and "probe crashed" in stored["prowlarr"].error
    assert stored["plex"].ok is True

    # the duty itself failing (Redis away, a bug) is logged; the tick's other duties still run
    process = scheduler_module.SchedulerProcess()
    monkeypatch.setattr(scheduler_module, "run_periodic_checks", lambda *a: (_ for _ in ()).throw(OSError("x")))
    process.run_integration_checks()  # does not raise
    monkeypatch.setattr(process, "check_integrations", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    swept = []
    monkeypatch.setattr(process, "sweep", lambda: swept.append(1))
    redis_conn.delete(SCHEDULER_HEARTBEAT_KEY)
    process.ticks = 0
    process.tick()
    assert redis_conn.exists(SCHEDULER_HEARTBEAT_KEY) and swept == [1]


def test_a_refused_check_is_not_repeated_by_the_scheduler_until_later(app_with, prowlarr, redis_conn):
    app_with(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY="wrong-key-0000")
    from app.config import get_settings

    health.run_periodic_checks(get_settings(), redis_conn)
    assert prowlarr.unauthorized_count == 1
    health.run_periodic_checks(get_settings(), redis_conn)
    assert prowlarr.unauthorized_count == 1  # not again within REFUSED_RECHECK_SECONDS
    assert health.load(redis_conn)["prowlarr"].refused  # and still shown
    health.run_periodic_checks(get_settings(), redis_conn, now=time.time() + health.REFUSED_RECHECK_SECONDS + 1)
    assert prowlarr.unauthorized_count == 2


# --- page, banner, access --------------------------------------------------------------------------

def test_the_banner_appears_on_every_page_when_a_check_failed_and_goes_after_a_good_test(app_with, prowlarr,
                                                                                        redis_conn):
    _, client = app_with(login=True, PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    assert "health-banner" not in client.get("/admin/logs").get_data(as_text=True)  # not checked yet
    good_key, prowlarr.api_key = prowlarr.api_key, "rotated-in-prowlarr"
    token = _csrf(client)
    response = client.post("/admin/system/integrations/prowlarr/test", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/system")
    for path in ("/admin/logs", "/admin/queues", "/admin/requests", "/admin/system"):
        page = client.get(path).get_data(as_text=True)
        assert 'class="flash health-banner"' in page, path
        assert "Prowlarr is unavailable: system status was refused with HTTP 401" in page
    page = client.get("/admin/system").get_data(as_text=True)
    assert re.search(r'data-integration="prowlarr" data-state="failing"', page)
    assert client.get("/admin/logs?partial=1").get_data(as_text=True).count("health-banner") == 0

    prowlarr.api_key = good_key
    client.post("/admin/system/integrations/prowlarr/test", data={"csrf_token": token})
    assert "health-banner" not in client.get("/admin/logs").get_data(as_text=True)
    page = client.get("/admin/system").get_data(as_text=True)
    assert 'data-integration="prowlarr" data-state="ok"' in page and prowlarr.version in page


def test_the_system_page_shows_services_workers_and_schedules_and_escapes_versions(app_with, prowlarr, settings,
                                                                                   redis_conn):
    from app.schedules.defaults import ensure_default_schedules

    ensure_default_schedules(settings)
    prowlarr.version = HOSTILE
    _, client = app_with(login=True, PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    client.post("/admin/system/integrations/prowlarr/test", data={"csrf_token": _csrf(client)})
    page = client.get("/admin/system").get_data(as_text=True)
    assert HOSTILE not in page and "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert 'data-service="redis"' in page and 'data-service="database"' in page
    assert re.search(r'data-service="scheduler"><th>Scheduler</th><td class="late">not running', page)
    assert 'data-group="monitor_download"' in page and "0/5" in page
    assert 'data-schedule="cleanup_job_history"' in page
    assert '<a href="/admin/system" class="here">System</a>' in page


def test_anonymous_users_are_refused(client, prowlarr, redis_conn):
    response = client.get("/api/admin/integrations")
    assert response.status_code == 401 and response.get_json()["success"] is False
    response = client.post("/api/admin/integrations/prowlarr/test")
    assert response.status_code == 401 and response.get_json()["success"] is False
    response = client.get("/admin/system")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.post("/admin/system/integrations/prowlarr/test").status_code in (302, 400)
    assert redis_conn.exists(health.RESULTS_KEY) == 0


def test_session_writes_need_the_csrf_token(admin_client, redis_conn):
    assert admin_client.post("/admin/system/integrations/plex/test").status_code == 400
    assert admin_client.post("/api/admin/integrations/plex/test").status_code == 400
    assert redis_conn.exists(health.RESULTS_KEY) == 0

"""Settings stored in the database: GET/PUT /api/admin/settings, /admin/settings (Save, Test, write-only
secrets, validation), the environment override, live reload into the next job, and the first-run setup over HTTP."""
from __future__ import annotations

import logging
import re

import pytest

from app import settings_store
from app.config import bound_settings, get_settings
from app.jobs.queues import queue_names_for_group
from app.models import SettingsChange, StoredSetting

from builders import BEARER
from fakes.prowlarr import FakeProwlarr
from helpers import csrf_token, drain

SECRET = "stored-prowlarr-key-9f8e7d"


def _put(client, body, **kwargs):
    return client.put("/api/admin/settings", json=body, headers=BEARER, **kwargs)


# --- the API ---------------------------------------------------------------------------------------------

def test_get_lists_each_setting_with_its_source_and_never_a_secret_value(client, bearer):
    assert _put(client, {"PROWLARR_URL": "http://prowlarr.lan:9696/", "PROWLARR_API_KEY": SECRET}).status_code == 200
    response = client.get("/api/admin/settings", headers=bearer)
    assert response.status_code == 200
    shown = response.get_json()["settings"]
    assert shown["PROWLARR_URL"] == {"value": "http://prowlarr.lan:9696/", "source": "database"}
    assert shown["PROWLARR_API_KEY"] == {"secret": True, "set": True, "source": "database"}
    assert shown["PLEX_TOKEN"] == {"secret": True, "set": False, "source": "default"}
    assert shown["ORGANIZE_MODE"] == {"value": "copy", "source": "default"}
    assert shown["TAG_FILES"] == {"value": "true", "source": "default"}
    assert "DATABASE_URL" not in shown and "SECRET_KEY" not in shown  # process-level: environment only
    assert SECRET not in response.get_data(as_text=True)


def test_anonymous_callers_are_refused(client):
    assert client.get("/api/admin/settings").status_code == 401
    assert client.put("/api/admin/settings", json={"PROWLARR_URL": "http://x"}).status_code == 401
    page = client.get("/admin/settings")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert not StoredSetting.select().exists()


def test_a_bad_value_is_a_400_naming_each_field_and_nothing_is_saved(client, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    response = _put(client, {"PROWLARR_URL": "ftp://prowlarr", "MEDIA_DIR": str(media),
                             "ORGANIZE_PATH_TEMPLATE": "{author}/{nope}", "DOWNLOAD_DIR": str(tmp_path / "missing"),
                             "MONITOR_POLL_SECONDS": "often", "NOT_A_SETTING": "1"})
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert set(errors) == {"PROWLARR_URL", "ORGANIZE_PATH_TEMPLATE", "DOWNLOAD_DIR", "MONITOR_POLL_SECONDS",
                           "NOT_A_SETTING"}
    assert "scheme must be one of http, https" in errors["PROWLARR_URL"]  # the start's own message
    assert "does not exist" in errors["DOWNLOAD_DIR"]
    assert not StoredSetting.select().exists()  # MEDIA_DIR was fine, and not saved either
    assert not SettingsChange.select().exists()


def test_move_without_download_dir_is_refused_as_at_start(client):
    response = _put(client, {"ORGANIZE_MODE": "move"})
    assert response.status_code == 400
    assert "requires DOWNLOAD_DIR" in response.get_json()["errors"]["ORGANIZE_MODE"]


@pytest.mark.parametrize("name, path, refused, problem", [
    ("MEDIA_DIR", "{tmp}", set(), None),
    ("MEDIA_DIR", "{tmp}", {"write"}, "is not writable by this process"),
    ("DOWNLOAD_DIR", "{tmp}", {"write"}, None),  # downloads are only read
    ("DOWNLOAD_DIR", "{tmp}", {"read"}, "is not readable by this process"),
    ("MEDIA_DIR", "{tmp}/missing", set(), "does not exist or is not a folder"),
    ("MEDIA_DIR", "{tmp}/a-file", set(), "does not exist or is not a folder"),
    ("DOWNLOAD_DIR", "relative/path", set(), "must be an absolute path"),
    ("MEDIA_DIR", "", set(), None),  # unset
])
def test_folder_rules(tmp_path, name, path, refused, problem):
    import os

    (tmp_path / "a-file").write_text("x")

    def access(_path: str, mode: int) -> bool:  # what access(2) would answer for a user without these rights
        return not (("write" in refused and mode & os.W_OK) or ("read" in refused and mode & os.R_OK))

    found = settings_store.folder_problem(name, path.format(tmp=tmp_path), access)
    assert (found is None) if problem is None else (problem in found)


def test_the_environment_wins_and_its_names_are_409(use_settings, client, bearer):
    from app import create_app

    app = create_app(use_settings(PROWLARR_URL="http://from-env:9696"))
    env_client = app.test_client()
    StoredSetting.create(key="PROWLARR_URL", value="http://from-db:9696", updated_by="admin")
    settings_store._bump_version()
    shown = env_client.get("/api/admin/settings", headers=bearer).get_json()["settings"]
    assert shown["PROWLARR_URL"] == {"value": "http://from-env:9696", "source": "environment"}
    assert settings_store.refresh_settings(force=True).prowlarr_url == "http://from-env:9696"
    response = env_client.put("/api/admin/settings", json={"PROWLARR_URL": "http://other:9696",
                                                           "PLEX_URL": "http://plex:32400"}, headers=bearer)
    assert response.status_code == 409
    assert set(response.get_json()["errors"]) == {"PROWLARR_URL"}
    assert StoredSetting.get_or_none(StoredSetting.key == "PLEX_URL") is None  # nothing saved


def test_a_blank_secret_keeps_the_stored_one_and_null_removes_a_value(client):
    assert _put(client, {"PROWLARR_URL": "http://p:9696", "PROWLARR_API_KEY": SECRET}).status_code == 200
    assert _put(client, {"PROWLARR_API_KEY": "", "PROWLARR_URL": "http://q:9696"}).status_code == 200
    assert StoredSetting.get_by_id("PROWLARR_API_KEY").value == SECRET
    assert settings_store.refresh_settings(force=True).prowlarr_url == "http://q:9696"
    shown = _put(client, {"PROWLARR_URL": None}).get_json()["settings"]
    assert shown["PROWLARR_URL"] == {"value": "", "source": "default"}


def test_every_change_is_recorded_without_the_secret(client, admin_client, caplog):
    with caplog.at_level(logging.INFO, logger="app.settings_store"):
        _put(client, {"PROWLARR_URL": "http://p:9696", "PROWLARR_API_KEY": SECRET})
    changes = {c.name: c for c in SettingsChange.select()}
    assert changes["PROWLARR_URL"].shown == "http://p:9696" and changes["PROWLARR_URL"].changed_by == "api-token"
    assert changes["PROWLARR_API_KEY"].shown == "(secret set)"
    assert changes["PROWLARR_URL"].created_at is not None
    assert any("settings changed by api-token" in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text
    page = admin_client.get("/admin/settings").get_data(as_text=True)
    assert "(secret set)" in page and SECRET not in page


def test_a_stored_secret_is_redacted_like_a_configured_one(client, process_log):
    _put(client, {"PLEX_TOKEN": "plex-token-from-the-db"})
    settings_store.refresh_settings(force=True)
    assert "plex-token-from-the-db" in get_settings().secret_values()
    logging.getLogger("app.test").warning("Plex answered for plex-token-from-the-db")
    assert "plex-token-from-the-db" not in process_log.getvalue()
    assert "[REDACTED]" in process_log.getvalue()


# --- the page --------------------------------------------------------------------------------------------

def test_the_page_saves_a_section_and_shows_errors_next_to_the_field(admin_client):
    token = csrf_token(admin_client, "/admin/settings")
    bad = admin_client.post("/admin/settings/prowlarr", data={
        "csrf_token": token, "action": "save", "PROWLARR_URL": "ftp://x", "PROWLARR_API_KEY": SECRET})
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    field = re.search(r'data-setting="PROWLARR_URL".*?</div>', html, re.S).group(0)
    assert "scheme must be one of http, https" in field and "Nothing was saved" in html
    assert not StoredSetting.select().exists()
    good = admin_client.post("/admin/settings/prowlarr", data={
        "csrf_token": token, "action": "save", "PROWLARR_URL": "http://p:9696", "PROWLARR_API_KEY": SECRET})
    assert good.status_code == 200 and "Saved." in good.get_data(as_text=True)
    assert SECRET not in good.get_data(as_text=True)
    assert StoredSetting.get_by_id("PROWLARR_API_KEY").value == SECRET
    assert SettingsChange.get(SettingsChange.name == "PROWLARR_URL").changed_by == "admin"
    no_token = admin_client.post("/admin/settings/prowlarr", data={"action": "save", "PROWLARR_URL": "http://z"})
    assert no_token.status_code == 400 and StoredSetting.get_by_id("PROWLARR_URL").value == "http://p:9696"


def test_test_uses_the_form_values_before_saving_and_lists_prowlarrs_indexers(admin_client, prowlarr):
    prowlarr.indexers = {1: "AudioBookBay", 2: "MyAnonamouse"}
    token = csrf_token(admin_client, "/admin/settings")
    response = admin_client.post("/admin/settings/prowlarr", data={
        "csrf_token": token, "action": "test", "PROWLARR_URL": prowlarr.url, "PROWLARR_API_KEY": prowlarr.api_key})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"Prowlarr {prowlarr.version} answered" in html and "AudioBookBay, MyAnonamouse" in html
    assert not StoredSetting.select().exists()  # a Test saves nothing
    wrong = admin_client.post("/admin/settings/prowlarr", data={
        "csrf_token": token, "action": "test", "PROWLARR_URL": prowlarr.url, "PROWLARR_API_KEY": "wrong-key-123"})
    assert "Prowlarr failed the test" in wrong.get_data(as_text=True)
    assert "wrong-key-123" not in wrong.get_data(as_text=True).replace('value=""', "")


def test_the_plex_test_lists_the_sections_to_pick_from(admin_client, tmp_path):
    from fakes.plex import FakePlex

    plex = FakePlex(locations={str(tmp_path): str(tmp_path)}).start()
    try:
        token = csrf_token(admin_client, "/admin/settings")
        html = admin_client.post("/admin/settings/plex", data={
            "csrf_token": token, "action": "test", "PLEX_URL": plex.url, "PLEX_TOKEN": plex.token}).get_data(
            as_text=True)
    finally:
        plex.stop()
    assert f'<option value="{plex.section}"' in html and "Audiobooks" in html


@pytest.mark.parametrize("text, edits, merged", [
    ("", {"AudioBookBay": "1440"}, "AudioBookBay=1440"),
    ("AudioBookBay=60,Other=5", {"audiobookbay": "1440"}, "Other=5,audiobookbay=1440"),
    ("AudioBookBay=60,Other=5", {"AudioBookBay": ""}, "Other=5"),
    ("Other=5", {"A": " 1.5 ", "B": ""}, "Other=5,A=1.5"),
])
def test_per_indexer_fields_fold_into_the_setting(text, edits, merged):
    from app.settings_sections import merge_per_indexer

    assert merge_per_indexer(text, edits) == merged


def test_the_seeding_limits_are_set_per_indexer_prowlarr_lists(admin_client, prowlarr):
    prowlarr.indexers = {1: "AudioBookBay", 2: "MyAnonamouse"}
    token = csrf_token(admin_client, "/admin/settings")
    form = {"csrf_token": token, "PROWLARR_URL": prowlarr.url, "PROWLARR_API_KEY": prowlarr.api_key,
            "INDEXER_SEEDING_MINUTES": "Gone=5"}
    html = admin_client.post("/admin/settings/prowlarr", data={**form, "action": "test"}).get_data(as_text=True)
    assert 'name="seeding_minutes:AudioBookBay"' in html and 'name="seeding_ratio:MyAnonamouse"' in html
    saved = admin_client.post("/admin/settings/prowlarr", data={
        **form, "action": "save", "seeding_minutes:AudioBookBay": "1440", "seeding_minutes:MyAnonamouse": "",
        "seeding_ratio:MyAnonamouse": "1.5"})
    assert saved.status_code == 200
    settings = settings_store.refresh_settings(force=True)
    assert settings.indexer_seeding_minutes == "Gone=5,AudioBookBay=1440"
    assert settings.seeding_limit_for("MyAnonamouse").ratio == 1.5
    bad = admin_client.post("/admin/settings/prowlarr", data={**form, "action": "save",
                                                              "seeding_ratio:AudioBookBay": "lots"})
    import html as markup

    assert bad.status_code == 400
    assert "'AudioBookBay': 'lots' is not a number" in markup.unescape(bad.get_data(as_text=True))


# --- live reload -----------------------------------------------------------------------------------------

def test_the_next_search_uses_a_prowlarr_url_changed_through_the_api(client, redis_conn, bearer):
    first, second = FakeProwlarr().start(), FakeProwlarr(api_key="second-prowlarr-key").start()
    try:
        assert _put(client, {"PROWLARR_URL": first.url, "PROWLARR_API_KEY": first.api_key}).status_code == 200
        created = client.post("/api/requests", json={"title": "Elantris", "author": "Brandon Sanderson"},
                              headers=bearer)
        assert created.status_code == 201
        drain(queue_names_for_group("search_indexers"))
        assert len(first.searches) == 1 and not second.searches
        assert _put(client, {"PROWLARR_URL": second.url, "PROWLARR_API_KEY": second.api_key}).status_code == 200
        created = client.post("/api/requests", json={"title": "Warbreaker", "author": "Brandon Sanderson"},
                              headers=bearer)
        assert created.status_code == 201
        drain(queue_names_for_group("search_indexers"))  # a worker of this process: it applies the change first
        assert len(first.searches) == 1 and len(second.searches) == 1
        assert second.unauthorized_count == 0
    finally:
        first.stop()
        second.stop()


def test_a_running_job_keeps_the_settings_it_started_with(client):
    _put(client, {"PROWLARR_URL": "http://before:9696"})
    with bound_settings(settings_store.refresh_settings(force=True)):
        _put(client, {"PROWLARR_URL": "http://after:9696"})
        settings_store.refresh_settings(force=True)
        assert get_settings().prowlarr_url == "http://before:9696"  # the job's own
    assert get_settings().prowlarr_url == "http://after:9696"  # the process's, for the next job


@pytest.mark.slow  # waits out the once-a-second look
def test_a_process_sees_another_process_save_within_a_second(client):
    """The version is read at most once a second: a save by another process (written here straight to the
    tables, as that process's store would) is applied at the next look after that."""
    import time

    settings_store.refresh_settings(force=True)
    StoredSetting.create(key="MONITOR_POLL_SECONDS", value="3", updated_by="other-process")
    settings_store._bump_version()
    deadline = time.monotonic() + settings_store.REFRESH_SECONDS + 0.5
    while settings_store.refresh_settings().monitor_poll_seconds != 3.0:
        assert time.monotonic() < deadline, "the saved setting was not applied within a second"
        time.sleep(0.05)


# --- first-run setup over HTTP ---------------------------------------------------------------------------

@pytest.fixture
def fresh_install(use_settings, caplog, redis_conn):
    """An app with no ADMIN_PASSWORD and nothing configured: (its test client, the generated password)."""
    from app import create_app

    with caplog.at_level(logging.WARNING, logger="app.auth"):
        app = create_app(use_settings(ADMIN_PASSWORD=""))
    password = [r.getMessage() for r in caplog.records if "generated an admin password" in r.getMessage()][0]
    return app.test_client(), password.split("'admin': ", 1)[1].split()[0]


def _login(client, password: str):
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    return client.post("/login", data={"username": "admin", "password": password, "csrf_token": token})


def test_admin_pages_lead_to_the_setup_until_it_is_finished(fresh_install):
    client, password = fresh_install
    assert _login(client, password).status_code == 302
    for page in ("/admin/logs", "/admin/requests", "/admin/system", "/admin/settings"):
        response = client.get(page)
        assert response.status_code == 302 and response.headers["Location"].endswith("/admin/setup"), page
    assert client.get("/api/admin/settings").status_code == 200  # the API is not redirected
    settings_store.finish_setup("admin")
    assert client.get("/admin/logs").status_code == 200


def test_an_install_with_admin_password_in_the_environment_is_not_sent_to_setup(admin_client):
    assert admin_client.get("/admin/logs").status_code == 200


@pytest.mark.slow  # hashes a new password (scrypt) and logs in three times
def test_the_setup_changes_the_generated_password(fresh_install):
    client, password = fresh_install
    _login(client, password)
    token = csrf_token(client, "/admin/setup")
    short = client.post("/admin/setup/password", data={"csrf_token": token, "password": "short",
                                                       "password_again": "short"})
    assert short.status_code == 400 and "at least 12 characters" in short.get_data(as_text=True)
    changed = client.post("/admin/setup/password", data={
        "csrf_token": token, "password": "a brand new passphrase", "password_again": "a brand new passphrase"})
    assert changed.status_code == 302 and changed.headers["Location"].endswith("step=prowlarr")
    assert client.get("/admin/setup?step=prowlarr").status_code == 200  # still logged in
    client.post("/logout", data={"csrf_token": csrf_token(client, "/admin/setup")})
    assert _login(client, password).status_code == 401  # the generated one no longer works
    assert _login(client, "a brand new passphrase").status_code == 302


def test_plex_may_be_skipped_and_finalize_then_runs_no_scan(fresh_install):
    from app.models import Job, SettingsState

    client, password = fresh_install
    _login(client, password)
    token = csrf_token(client, "/admin/setup?step=plex")
    skipped = client.post("/admin/setup/step/plex", data={"csrf_token": token, "action": "skip"})
    assert skipped.status_code == 302 and skipped.headers["Location"].endswith("step=finalize")
    assert not StoredSetting.select().exists()
    done = client.post("/admin/setup/finalize", data={"csrf_token": token})
    assert done.status_code == 200 and "Plex was skipped" in done.get_data(as_text=True)
    assert not Job.select().where(Job.type == "scan_plex").exists()
    assert SettingsState.get_by_id(1).setup_finished_by == "admin"
    assert client.get("/admin/logs").status_code == 200


def test_a_wizard_step_with_a_bad_value_saves_nothing_and_stays(fresh_install):
    client, password = fresh_install
    _login(client, password)
    token = csrf_token(client, "/admin/setup?step=prowlarr")
    response = client.post("/admin/setup/step/prowlarr", data={
        "csrf_token": token, "action": "save", "PROWLARR_URL": "prowlarr.lan", "PROWLARR_API_KEY": "k-123456"})
    assert response.status_code == 400 and "scheme must be one of http, https" in response.get_data(as_text=True)
    assert not StoredSetting.select().exists()


def test_after_the_setup_a_password_change_needs_the_current_password(fresh_install):
    client, password = fresh_install
    _login(client, password)
    settings_store.finish_setup("admin")
    token = csrf_token(client, "/admin/setup")
    new = {"csrf_token": token, "password": "a brand new passphrase", "password_again": "a brand new passphrase"}
    refused = client.post("/admin/setup/password", data=new)
    assert refused.status_code == 400 and "current password is wrong" in refused.get_data(as_text=True)
    assert client.post("/admin/setup/password", data={**new, "current_password": password}).status_code == 302


@pytest.mark.slow  # two apps, scrypt for the new password
def test_another_web_process_takes_the_new_password_at_its_next_request(fresh_install, use_settings):
    from app import create_app

    client, password = fresh_install
    other = create_app(use_settings(ADMIN_PASSWORD="")).test_client()  # a second web process, same instance dir
    assert other.get("/login").status_code == 200
    _login(client, password)
    new = "a brand new passphrase"
    changed = client.post("/admin/setup/password", data={"csrf_token": csrf_token(client, "/admin/setup"),
                                                         "password": new, "password_again": new})
    assert changed.status_code == 302
    assert _login(other, password).status_code == 401
    assert _login(other, new).status_code == 302


def test_values_and_indexer_names_from_outside_stay_text(admin_client, client, prowlarr):
    from helpers import HOSTILE

    assert _put(client, {"DOWNLOAD_CLIENT_USERNAME": HOSTILE}).status_code == 200
    prowlarr.indexers = {1: f"Tracker {HOSTILE}"}
    token = csrf_token(admin_client, "/admin/settings")
    pages = [admin_client.get("/admin/settings").get_data(as_text=True),
             admin_client.post("/admin/settings/prowlarr", data={
                 "csrf_token": token, "action": "test", "PROWLARR_URL": prowlarr.url,
                 "PROWLARR_API_KEY": prowlarr.api_key}).get_data(as_text=True)]
    for html in pages:
        assert "<script>window.__pwned" not in html and "&lt;script&gt;window.__pwned" in html


def test_the_scheduler_applies_a_save_on_its_next_tick(settings, redis_conn):
    from app.schedules.process import SchedulerProcess

    scheduler = SchedulerProcess()
    scheduler.tick()
    assert get_settings().download_stall_limit_seconds == 6 * 3600
    StoredSetting.create(key="DOWNLOAD_STALL_LIMIT_SECONDS", value="600", updated_by="web")  # saved by the web
    settings_store._bump_version()
    settings_store._checked_at = 0.0  # a second has passed since the last look
    scheduler.tick()
    assert get_settings().download_stall_limit_seconds == 600


def test_the_settings_page_has_a_notifications_section_that_leads_to_the_targets(admin_client):
    page = admin_client.get("/admin/settings").get_data(as_text=True)
    assert 'id="notifications"' in page and 'href="/admin/notifications"' in page
    assert admin_client.get("/admin/notifications").status_code == 200

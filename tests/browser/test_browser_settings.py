"""Browser tests of the settings (Playwright on Debian's chromium): the first-run setup from a fresh database to a
finished Library Scan against the fake Prowlarr and Plex and the real qbittorrent-nox, and a setting changed on
/admin/settings that the next job of a running worker uses without a restart."""
from __future__ import annotations

import logging

import requests
from playwright.sync_api import expect

from app.models import Job, SettingsChange, StoredSetting

from fakes.plex import FakePlex
from fakes.prowlarr import FakeProwlarr
from helpers import login, screenshot, serve_app, start_process, stop_process, wait_for

NEW_PASSWORD = "my own admin passphrase"


def _fill_section(page, section: str, values: dict[str, str]) -> None:
    for name, value in values.items():
        page.fill(f"#section-{section} [name={name}]", value)


def _test_then_save(page, section: str, expected: str) -> None:
    page.click(f"#section-{section} button[value=test]")
    expect(page.locator(f"#section-{section} .test-outcome")).to_contain_text(expected, timeout=15_000)


def test_the_setup_wizard_runs_from_a_fresh_database_to_a_finished_library_scan(
        page, use_settings, settings_env, qbittorrent, redis_conn, tmp_path, caplog):
    from app import create_app

    media = tmp_path / "media"
    (media / "Brandon Sanderson" / "Elantris").mkdir(parents=True)
    prowlarr = FakeProwlarr(indexers={1: "AudioBookBay", 2: "MyAnonamouse"}).start()
    plex = FakePlex(locations={str(media): str(media)}).start()
    plex.items.append(plex.album("Elantris", "Brandon Sanderson"))
    with caplog.at_level(logging.WARNING, logger="app.auth"):
        app = create_app(use_settings(ADMIN_PASSWORD=""))  # a fresh install: nothing configured
    generated = [r.getMessage() for r in caplog.records if "generated an admin password" in r.getMessage()][0]
    generated = generated.split("'admin': ", 1)[1].split()[0]
    worker = start_process(["-m", "workers", "scan_plex", "--size", "1"], settings_env[1], tmp_path / "worker.log")
    try:
        with serve_app(app) as url:
            page.goto(f"{url}/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", generated)
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/admin/setup")  # the admin pages lead to the setup

            page.fill("input[name=password]", NEW_PASSWORD)
            page.fill("input[name=password_again]", NEW_PASSWORD)
            page.click("#password-form button[type=submit]")
            page.wait_for_url("**step=prowlarr")

            _fill_section(page, "prowlarr", {"PROWLARR_URL": prowlarr.url, "PROWLARR_API_KEY": prowlarr.api_key})
            _test_then_save(page, "prowlarr", "AudioBookBay, MyAnonamouse")
            _fill_section(page, "prowlarr", {"PROWLARR_API_KEY": prowlarr.api_key})  # a secret is never shown again
            page.fill('#section-prowlarr [name="seeding_minutes:AudioBookBay"]', "1440")  # the indexers it listed
            page.click("#section-prowlarr button[value=save]")
            page.wait_for_url("**step=download_client")

            client_values = {"DOWNLOAD_CLIENT_URL": qbittorrent.url, "DOWNLOAD_CLIENT_USERNAME": qbittorrent.username,
                             "DOWNLOAD_CLIENT_PASSWORD": qbittorrent.password}
            _fill_section(page, "download_client", client_values)
            _test_then_save(page, "download_client", "Category: readmeabook")
            assert "qBittorrent v" in page.inner_text("#section-download_client .test-outcome")
            _fill_section(page, "download_client", {"DOWNLOAD_CLIENT_PASSWORD": qbittorrent.password})
            page.click("#section-download_client button[value=save]")
            page.wait_for_url("**step=paths")

            _fill_section(page, "paths", {"DOWNLOAD_DIR": str(tmp_path / "missing"), "MEDIA_DIR": str(media)})
            page.click("#section-paths button[value=save]")
            expect(page.locator('[data-setting="DOWNLOAD_DIR"] .field-error')).to_contain_text("does not exist")
            _fill_section(page, "paths", {"DOWNLOAD_DIR": str(qbittorrent.download_dir)})
            page.click("#section-paths button[value=save]")
            page.wait_for_url("**step=plex")

            _fill_section(page, "plex", {"PLEX_URL": plex.url, "PLEX_TOKEN": plex.token})
            _test_then_save(page, "plex", "Audiobooks")
            page.select_option("#section-plex select[name=PLEX_LIBRARY_ID]", plex.section)
            _fill_section(page, "plex", {"PLEX_TOKEN": plex.token})
            page.click("#section-plex button[value=save]")
            page.wait_for_url("**step=finalize")

            page.click("#finalize")
            expect(page.locator("#scan-status")).to_have_text("completed", timeout=60_000)
            expect(page.locator("#scan-outcome")).to_contain_text("Library Scan completed")
            screenshot(page, "setup-finished")
            page.goto(f"{url}/admin/logs")
            assert page.url == f"{url}/admin/logs"  # setup finished: no more detour
    finally:
        stop_process(worker)
        prowlarr.stop()
        plex.stop()
    stored = {row.key: row.value for row in StoredSetting.select()}
    assert stored["PROWLARR_URL"] == prowlarr.url and stored["PLEX_LIBRARY_ID"] == plex.section
    assert stored["DOWNLOAD_DIR"] == str(qbittorrent.download_dir)
    assert stored["INDEXER_SEEDING_MINUTES"] == "AudioBookBay=1440"
    scan = Job.get(Job.type == "scan_plex")
    assert scan.status == "completed"
    assert all(qbittorrent.password not in change.shown for change in SettingsChange.select())


def test_a_setting_changed_on_the_page_is_used_by_the_next_job_of_a_running_worker(
        page, live_url, settings_env, redis_conn, tmp_path, bearer):
    first, second = FakeProwlarr().start(), FakeProwlarr(api_key="the-second-prowlarr-key").start()
    worker = start_process(["-m", "workers", "search_indexers", "--size", "1"], settings_env[1],
                           tmp_path / "worker.log")
    try:
        login(page, live_url)
        for prowlarr, title in ((first, "Elantris"), (second, "Warbreaker")):
            page.goto(f"{live_url}/admin/settings")
            _fill_section(page, "prowlarr", {"PROWLARR_URL": prowlarr.url, "PROWLARR_API_KEY": prowlarr.api_key})
            page.click("#section-prowlarr button[value=save]")
            expect(page.locator("#section-prowlarr .saved")).to_be_visible()
            expect(page.locator('#section-prowlarr [data-setting="PROWLARR_API_KEY"] .secret-state')).to_have_text(
                "A value is set (never shown).")
            assert prowlarr.api_key not in page.content()
            created = requests.post(f"{live_url}/api/requests", json={"title": title, "author": "Brandon Sanderson"},
                                    headers=bearer, timeout=10)
            assert created.status_code == 201
            wait_for(lambda prowlarr=prowlarr: prowlarr.searches, 15, message=f"a search on {prowlarr.url}")
        screenshot(page, "settings-saved")
    finally:
        stop_process(worker)
        first.stop()
        second.stop()
    assert len(first.searches) == 1 and len(second.searches) == 1  # the worker was never restarted
    assert worker.returncode is not None


def test_finalize_stops_waiting_for_a_stuck_library_scan(page, live_url, redis_conn, tmp_path, bearer):
    """No scan worker runs: the job waits; once it is declared stuck, the page says so and stops polling."""
    plex = FakePlex(locations={str(tmp_path): str(tmp_path)}).start()
    try:
        login(page, live_url)
        requests.put(f"{live_url}/api/admin/settings", json={"PLEX_URL": plex.url, "PLEX_TOKEN": plex.token,
                                                             "PLEX_LIBRARY_ID": plex.section},
                     headers=bearer, timeout=10).raise_for_status()
        page.goto(f"{live_url}/admin/setup?step=finalize")
        page.click("#finalize")
        expect(page.locator("#scan-status")).to_have_text("pending")
        Job.update(status="stuck").where(Job.type == "scan_plex").execute()  # its worker stopped answering
        expect(page.locator("#scan-outcome")).to_contain_text("stuck", timeout=10_000)
        expect(page.locator("#library-scan")).to_have_attribute("data-done", "stuck")
        screenshot(page, "setup-scan-stuck")
    finally:
        plex.stop()

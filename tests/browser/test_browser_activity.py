"""Browser tests of /admin/activity and the health checks on /admin/system: the rows
follow the client with the dashboard's refresh, an action asks first and lands, a check shows its fix.
Playwright drives Debian's chromium (/usr/bin/chromium); the download client is the in-memory fake."""
from __future__ import annotations

from playwright.sync_api import expect

from app.models import Audiobook, BlockedRelease, DownloadHistory, Request

from helpers import HOSTILE, login, screenshot


def test_activity_follows_the_client_and_search_again_asks_first(page, live_url, fake_client):
    request = Request.create(audiobook=Audiobook.create(title=HOSTILE, author="Brandon Sanderson"),
                             status="downloading")
    info_hash = "ab" * 20
    fake_client.put(info_hash, name="Elantris", progress=0.25)
    row = DownloadHistory.create(request=request, indexer_name="Quick Tracker", torrent_name="Elantris [M4B]",
                                 torrent_hash=info_hash, download_client="qbittorrent", download_client_id=info_hash,
                                 download_status="downloading", selected=True)
    login(page, live_url)
    page.click("header >> text=Activity")
    page.wait_for_url(f"{live_url}/admin/activity")
    line = page.locator(f'tr[data-download="{row.id}"]')
    expect(line.locator(".progress-value")).to_have_text("25.0%")
    fake_client.set(info_hash, progress=0.6, download_speed=2048, eta=90)
    expect(line.locator(".progress-value")).to_have_text("60.0%", timeout=12_000)  # the page's own refresh
    expect(line.locator(".speed")).to_have_text("2.0 KiB/s")
    expect(line.locator(".eta")).to_have_text("1 min")
    screenshot(page, "activity")

    page.once("dialog", lambda dialog: dialog.dismiss())  # asked first: dismissed, nothing happens
    line.locator("button.search-again").click()
    expect(line).to_be_visible()
    assert info_hash in fake_client.torrents
    page.once("dialog", lambda dialog: dialog.accept())
    line.locator("button.search-again").click()
    page.wait_for_url(f"{live_url}/admin/activity")
    expect(page.locator(".flash").last).to_contain_text("Removed 1 torrents with their files. Searching again")
    expect(page.locator(f'tr[data-download="{row.id}"]')).to_have_count(0)
    assert info_hash not in fake_client.torrents and BlockedRelease.select().count() == 1
    assert page.evaluate("window.__pwned === undefined")


def test_the_system_page_shows_each_check_with_its_fix(page, live_url, use_settings, flask_app, tmp_path):
    flask_app.config["SETTINGS"] = use_settings(MEDIA_DIR=str(tmp_path / "not-mounted"))
    login(page, live_url)
    page.goto(f"{live_url}/admin/system")
    check = page.locator('#health-checks tr[data-check="media_dir_space"]')
    expect(check).to_have_attribute("data-level", "error")
    expect(check.locator(".health-fix")).to_have_text(
        f"Create or mount {tmp_path / 'not-mounted'}, or correct MEDIA_DIR")
    expect(page.locator('#health-checks tr[data-check="redis_persistence"] .health-fix')).to_contain_text(
        "appendonly yes")
    page.click("header >> text=Logs")  # the banner on other pages, with the fix
    expect(page.locator('.health-banner[data-check="media_dir_space"]')).to_contain_text("Fix: Create or mount")
    screenshot(page, "system-checks")

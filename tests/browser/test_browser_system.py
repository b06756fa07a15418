"""Browser test of /admin/system: Test an integration, see its status change, and the
health banner on another page. Playwright drives Debian's chromium (/usr/bin/chromium)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from helpers import HOSTILE, login, screenshot


@pytest.fixture
def live_url(live_url_with_prowlarr):
    return live_url_with_prowlarr


def test_test_button_changes_the_status_and_the_banner_follows_on_other_pages(page, live_url, prowlarr):
    prowlarr.version = HOSTILE
    login(page, live_url)
    expect(page.locator(".health-banner")).to_have_count(0)  # nothing checked yet
    page.click("header >> text=System")
    page.wait_for_url(f"{live_url}/admin/system")
    row = page.locator('tr[data-integration="prowlarr"]')
    expect(row).to_have_attribute("data-state", "unchecked")
    expect(page.locator('tr[data-integration="plex"]')).to_have_attribute("data-state", "unconfigured")
    expect(page.locator('#services tr[data-service="redis"] td')).to_have_text("ok")

    # the key was rotated in Prowlarr: Test shows the refusal, and every page the banner
    good_key, prowlarr.api_key = prowlarr.api_key, "rotated-in-prowlarr"
    row.locator("button.test").click()
    page.wait_for_url(f"{live_url}/admin/system")
    expect(row).to_have_attribute("data-state", "failing")
    expect(row.locator(".integration-error")).to_contain_text("refused with HTTP 401 (check PROWLARR_API_KEY)")
    page.click("header >> text=Logs")
    page.wait_for_url(f"{live_url}/admin/logs")
    banner = page.locator('.health-banner[data-integration="prowlarr"]')
    expect(banner).to_contain_text("Prowlarr is unavailable: system status was refused with HTTP 401")
    assert good_key not in banner.inner_text()
    screenshot(page, "system-banner")

    # fixed: the banner's link leads back, Test turns the row OK (its version shown as text), the banner goes
    prowlarr.api_key = good_key
    banner.locator("a").click()
    page.wait_for_url(f"{live_url}/admin/system")
    row.locator("button.test").click()
    page.wait_for_url(f"{live_url}/admin/system")
    expect(row).to_have_attribute("data-state", "ok")
    expect(row).to_contain_text(HOSTILE)
    expect(page.locator(".health-banner")).to_have_count(0)
    assert page.evaluate("window.__pwned === undefined")
    screenshot(page, "system-ok")
    page.goto(f"{live_url}/admin/queues")
    expect(page.locator(".health-banner")).to_have_count(0)

"""Browser test of /admin/system (issue 12 item 8): Test an integration, see its status change, and the
health banner on another page. Playwright drives Debian's chromium (/usr/bin/chromium)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from helpers import ADMIN_PASSWORD

SHOTS = Path(__file__).parent / "screenshots"
HOSTILE = '<script>window.__pwned = 1</script>"><img src=x onerror="window.__pwned = 2">'


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": "/usr/bin/chromium", "headless": True,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync"]}


@pytest.fixture
def live_url(use_settings, prowlarr, redis_conn):
    """The app with Prowlarr configured (the fake), on a loopback port."""
    from app import create_app

    flask_app = create_app(use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key))
    server = make_server("127.0.0.1", 0, flask_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _login(page, live_url):
    page.goto(f"{live_url}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/admin/logs")


def test_test_button_changes_the_status_and_the_banner_follows_on_other_pages(page, live_url, prowlarr):
    prowlarr.version = HOSTILE
    _login(page, live_url)
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
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "system-banner.png"), full_page=True)

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
    page.screenshot(path=str(SHOTS / "system-ok.png"), full_page=True)
    page.goto(f"{live_url}/admin/queues")
    expect(page.locator(".health-banner")).to_have_count(0)

"""Browser test of /admin/notifications: add a target with its events, see it redacted, Test
it (one message at a loopback receiver), change its events, remove it. Playwright drives Debian's chromium."""
from __future__ import annotations

import json

from playwright.sync_api import expect

from app.models import NotificationTarget

from fakes.notify_receiver import PASSWORD, TOKEN
from helpers import HOSTILE, login, screenshot


def test_add_test_edit_and_remove_a_target(page, live_url, notify_receiver):
    receiver = notify_receiver()
    login(page, live_url)
    page.click("header >> text=Notifications")
    page.wait_for_url(f"{live_url}/admin/notifications")
    expect(page.locator("#notification-targets")).to_contain_text("No notification targets.")

    # a URL Apprise cannot use is refused with the reason, shown as text
    page.fill("#target-url", f"nosuch://{HOSTILE}")
    page.click("#add-target button[type=submit]")
    expect(page.locator(".flash").first).to_contain_text("Not added: ")
    assert page.evaluate("window.__pwned === undefined")

    page.fill("#target-url", receiver.url())
    for unwanted in ("grabbed", "available", "job_failed", "schedule_late", "integration_down", "integration_up"):
        page.uncheck(f'#add-target input[value="{unwanted}"]')
    page.click("#add-target button[type=submit]")
    row = page.locator("#notification-targets tr[data-source=db]")
    expect(row.locator(".target-url")).to_have_text(
        f"json://user:[REDACTED]@127.0.0.1:{receiver.port}/hook/[REDACTED]")
    assert TOKEN not in page.content() and PASSWORD not in page.content()
    expect(row.locator('input[value="failed"]')).to_be_checked()
    expect(row.locator('input[value="grabbed"]')).not_to_be_checked()

    row.locator("button.test").click()
    expect(page.locator(".flash").first).to_contain_text("Test message sent to json://user:[REDACTED]@")
    assert [m["title"] for m in receiver.messages()] == ["ReadMeABook test notification"]

    row.locator('input[value="grabbed"]').check()
    row.locator('input[value="warn"]').uncheck()
    row.locator("button.save-events").click()
    expect(page.locator(".flash").first).to_contain_text("Saved the events of")
    assert NotificationTarget.get().events == ["grabbed", "failed"]
    screenshot(page, "notifications")

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.remove-target").click()
    expect(page.locator("#notification-targets")).to_contain_text("No notification targets.")
    assert NotificationTarget.select().count() == 0
    assert TOKEN not in json.dumps(receiver.messages())

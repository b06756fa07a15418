"""Browser test of /admin/requests: the New request form with its validation
messages, the new row at the top, Search → the ranked releases, Download → the job queued, Delete → the row
hidden (and shown by the deleted filter). Playwright driving Debian's chromium (/usr/bin/chromium) against the
real app on a loopback port, the fake Prowlarr, real PostgreSQL and Redis."""
from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.models import Audiobook, BlockedRelease, Job, Request, utcnow

from fakes.prowlarr import FakeRelease
from helpers import HOSTILE, login, screenshot

MiB = 1024 * 1024


@pytest.fixture
def live_url(live_url_with_prowlarr):
    return live_url_with_prowlarr


def test_create_search_download_and_delete_from_the_requests_page(page, live_url, prowlarr):
    older = Request.create(audiobook=Audiobook.create(title="An Older Book", author="Someone"),
                           created_at=utcnow() - timedelta(hours=1))
    title, author = "Elantris", "Brandon Sanderson"
    prowlarr.releases = [
        FakeRelease(f"{author} - {title} [MP3]", 300 * MiB, seeders=40),
        FakeRelease(f"{author} - {title} (Unabridged) [M4B] {HOSTILE}", 600 * MiB, seeders=12),
        FakeRelease(f"{author} - {title} [FLAC]", 900 * MiB, seeders=30),
    ]
    login(page, live_url)
    page.goto(f"{live_url}/admin/requests")

    # a bad form: the messages stand next to their fields, nothing is created
    page.fill("#new-request input[name=title]", title)
    page.fill("#new-request input[name=asin]", "B00/../x")
    page.click("#new-request button[type=submit]")
    expect(page.locator('.field-error[data-field="author"]')).to_have_text("author is required")
    expect(page.locator('.field-error[data-field="asin"]')).to_have_text("asin must be letters and digits only")
    assert Request.select().count() == 1
    expect(page.locator("#new-request input[name=title]")).to_have_value(title)   # kept for the next try

    # fixed: created, and its row is the first
    page.fill("#new-request input[name=author]", author)
    page.fill("#new-request input[name=asin]", "")
    page.click("#new-request button[type=submit]")
    page.wait_for_url(f"{live_url}/admin/requests")
    created = Request.get(Request.id != older.id)
    first = page.locator("tr.request-row").first
    expect(first).to_have_attribute("data-request", str(created.id))
    expect(first.locator(".book-title")).to_have_text(title)
    BlockedRelease.create(request=created, title=f"{author} - {title} [FLAC]", reason="stalled")

    # Search lists every release, ranked, with the blocklisted one marked
    first.locator("button.search-releases").click()
    rows = page.locator("#release-panel tbody tr.release")
    expect(rows).to_have_count(3, timeout=15_000)
    expect(page.locator("#release-panel .release-status")).to_have_text("3 releases, best first.")
    expect(rows.first.locator("td").first).to_have_text(f"{author} - {title} (Unabridged) [M4B] {HOSTILE}")
    expect(page.locator("#release-panel tr.release", has_text="[FLAC]")).to_contain_text("blocklisted")
    assert page.evaluate("window.__pwned === undefined")                          # shown as text, never run
    screenshot(page, "requests-releases")

    # Download the best: the job is queued
    rows.first.locator("button.download-release").click()
    queued = page.locator("#release-panel .download-queued")
    expect(queued).to_contain_text("Download queued: job ", timeout=15_000)
    job = Job.get((Job.type == "download_torrent") & (Job.request == created.id))
    expect(queued.locator("a")).to_have_text(f"job {job.id}")
    assert job.status == "pending" and job.payload["torrent"]["title"].endswith(HOSTILE)
    assert Request.get_by_id(created.id).status == "searching"
    # a blocklisted release is refused with the API's reason
    page.locator("#release-panel tr.release", has_text="[FLAC]").locator("button.download-release").click()
    expect(page.locator("#release-panel .release-status")).to_contain_text("Not downloaded: ")
    expect(page.locator("#release-panel .release-status")).to_contain_text("[FLAC]' is blocklisted for this request")
    screenshot(page, "requests-download-queued")

    # Delete (after confirming): the row disappears; the deleted filter shows it
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f'tr[data-request="{created.id}"] button.delete-request').click()
    page.wait_for_url(f"{live_url}/admin/requests")
    expect(page.locator(f'tr[data-request="{created.id}"]')).to_have_count(0)
    expect(page.locator(f'tr[data-request="{older.id}"]')).to_have_count(1)
    assert Request.get_by_id(created.id).status == "deleted"
    assert Job.get_by_id(job.id).status == "cancelled"
    page.click("a.show-deleted")
    expect(page.locator(f'tr[data-request="{created.id}"] .status-deleted')).to_have_text("deleted")
    screenshot(page, "requests-deleted-filter")

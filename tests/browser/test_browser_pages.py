"""Every page on a phone and on a desktop, for everyone.

The pages are enumerated from the Flask url_map (every GET page under /admin, and /login), so a page added
later is covered without touching this file; a page whose URL takes an argument this file has no sample for
fails with its name. With sample data in every table, each page is loaded at 390x844 and 1280x800 and must
not scroll sideways (document.documentElement.scrollWidth <= the window's width), and axe-core's WCAG 2 A and
AA rules (axe-playwright-python, which bundles axe-core; with WCAG 2.2's target size, so every control is big
and far enough apart to hit) must report no violation.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe

from app.models import Audiobook, BlockedRelease, DownloadHistory, Job, JobEvent, Request, utcnow

from helpers import login

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
           "resultTypes": ["violations"]}
LONG = "An Extraordinarily Long Audiobook Title That Goes On And On Without Any Break " * 2


def sample_data() -> dict[str, str]:
    """Rows in every table a page lists (long titles, every status colour, an error and a stack trace), and
    the values of the URL arguments of pages about one thing."""
    now = utcnow()
    book = Audiobook.create(title=LONG, author="Brandon Sanderson", narrator="Michael Kramer")
    downloading = Request.create(audiobook=book, status="downloading", progress=42)
    failed = Request.create(audiobook=Audiobook.create(title="Warbreaker", author="Brandon Sanderson"),
                            status="failed", error_message="Download lost: torrent not found " * 3)
    Request.create(audiobook=Audiobook.create(title="Elantris", author="Brandon Sanderson"), status="available",
                   progress=100)
    search = Job.create(request=downloading, type="search_indexers", status="completed", attempts=1,
                        payload={"requestId": str(downloading.id), "title": LONG},
                        result={"releases": 12, "chosen": LONG},
                        started_at=now - timedelta(minutes=9), completed_at=now - timedelta(minutes=8),
                        created_at=now - timedelta(minutes=9))
    JobEvent.create(job=search, level="info", context="SearchIndexers", message=f"Found 12 releases for {LONG}",
                    metadata={"releases": [LONG] * 3}, created_at=now - timedelta(minutes=9))
    JobEvent.create(job=search, level="warn", context="SearchIndexers", message="One indexer timed out",
                    created_at=now - timedelta(minutes=8))
    Job.create(request=downloading, type="monitor_download", status="delayed", attempts=1, polls=30, polling=True,
               payload={"requestId": str(downloading.id)}, started_at=now - timedelta(seconds=20),
               run_at=now + timedelta(seconds=10), created_at=now - timedelta(minutes=7))
    broken = Job.create(request=failed, type="download_torrent", status="failed", attempts=3,
                        error_message="qBittorrent refused the torrent: " + "x" * 300,
                        stack_trace="Traceback (most recent call last):\n  File " + "/very/long/path" * 20,
                        started_at=now - timedelta(minutes=5), completed_at=now - timedelta(minutes=4),
                        created_at=now - timedelta(minutes=6))
    JobEvent.create(job=broken, level="error", context="DownloadTorrent", message="Refused: " + "y" * 200,
                    created_at=now - timedelta(minutes=4))
    BlockedRelease.create(request=failed, title=LONG, info_hash="a" * 40, indexer="Tracker A",
                          reason="no progress for 21600 s")
    DownloadHistory.create(request=failed, torrent_name=LONG, download_client="qbittorrent",
                           download_client_id="b" * 40, download_status="seeding", indexer_name="Tracker A",
                           completed_at=now - timedelta(hours=1))
    return {"job_id": str(broken.id), "request_id": str(downloading.id)}


def page_urls(flask_app, samples: dict[str, str]) -> list[str]:
    """The URL of every GET page under /admin, its arguments filled from the samples."""
    urls = []
    for rule in flask_app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or not rule.rule.startswith("/admin"):
            continue
        missing = set(rule.arguments) - set(samples)
        assert not missing, f"{rule.rule}: add a sample for {sorted(missing)} to sample_data()"
        with flask_app.test_request_context():
            from flask import url_for

            urls.append(url_for(rule.endpoint, **{name: samples[name] for name in rule.arguments}))
    return sorted(set(urls))


def problems_on(page, axe: Axe, url: str, viewport: str) -> list[str]:
    """What is wrong with the page now loaded: sideways scrolling, and every axe violation with its nodes."""
    found = []
    width = page.evaluate("window.innerWidth")
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    if scroll_width > width:
        found.append(f"{url} @{viewport}: scrolls sideways ({scroll_width} px wide in a {width} px window)")
    for violation in axe.run(page, options=WCAG_AA).response["violations"]:
        targets = [node["target"] for node in violation["nodes"]][:3]
        found.append(f"{url} @{viewport}: {violation['id']} ({violation['impact']}) on {targets}")
    return found


@pytest.mark.slow
def test_no_page_scrolls_sideways_or_breaks_a_wcag_rule_on_a_phone_or_a_desktop(page, live_url, flask_app):
    urls = page_urls(flask_app, sample_data())
    assert {"/admin/logs", "/admin/requests", "/admin/system"} <= set(urls)  # the enumeration finds the pages
    axe = Axe()
    found: list[str] = []
    checked = 0
    for viewport, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        page.context.clear_cookies()
        page.goto(f"{live_url}/login")
        found += problems_on(page, axe, "/login", viewport)
        login(page, live_url)
        for url in urls:
            response = page.goto(f"{live_url}{url}")
            assert response is not None and response.status == 200, (url, response and response.status)
            if not response.text().lstrip().lower().startswith("<!doctype html"):
                continue  # a fragment the pages load into themselves (a log row's details), not a page
            found += problems_on(page, axe, url, viewport)
            checked += 1
    assert checked >= 2 * 7, checked
    assert not found, "\n".join(found)

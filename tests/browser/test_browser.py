"""Browser tests: Playwright (pytest-playwright) driving Debian's chromium (/usr/bin/chromium, never a
downloaded browser) against the real app on a loopback port. Each test saves a screenshot under
tests/screenshots/ (git-ignored)."""
from __future__ import annotations

from playwright.sync_api import expect

from app.audiobook_requests.state import update_progress
from app.models import Audiobook, Job, JobEvent, Request, ScheduledJob
from app.schedules.defaults import ensure_default_schedules

from helpers import HOSTILE, login, screenshot, start_process, stop_process


def test_log_in_filter_the_logs_and_open_an_event_log(page, live_url, redis_conn):
    book = Audiobook.create(title=f"The Way of Kings {HOSTILE}", author="Brandon Sanderson")
    request = Request.create(audiobook=book)
    failed = Job.create(type="organize_files", status="failed", request=request, error_message=f"copy failed {HOSTILE}",
                        result={"title": HOSTILE})
    JobEvent.create(job=failed, level="error", context="FileOrganizer", message=f"cannot copy {HOSTILE}",
                    metadata={"file": HOSTILE})
    Job.create(type="noop", status="completed")

    login(page, live_url)
    assert page.locator("tr.job-row").count() == 2
    page.select_option("select[name=status]", "failed")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**status=failed**")
    assert page.locator("tr.job-row").count() == 1
    page.click("tr.job-row summary")
    page.wait_for_selector("tr.event.level-error")
    text = page.inner_text("tr.job-row")
    assert "cannot copy <script>window.__pwned = 1</script>" in text  # shown as text
    assert page.evaluate("window.__pwned === undefined")  # and never run
    # the table refreshes every 10 s; the opened row stays open and shows a new event
    JobEvent.create(job=failed, level="warn", context="FileOrganizer", message="a later event")
    page.wait_for_selector("tr.event.level-warn", timeout=15_000)
    assert page.locator("tr.job-row details[open]").count() == 1
    screenshot(page, "logs-event-log")


def test_trigger_now_follows_the_job_to_completed(page, live_url, settings_env, redis_conn, tmp_path):
    settings, env = settings_env
    ensure_default_schedules(settings)
    worker = start_process(["tests/run_pool.py", "maintenance", "--size", "1"], env, tmp_path / "worker.log")
    try:
        login(page, live_url)
        page.goto(f"{live_url}/admin/scheduled")
        page.click('tr[data-schedule="cleanup_job_history"] button.trigger')
        page.wait_for_selector("#started-status.status-completed", timeout=30_000)
        screenshot(page, "trigger-now-completed")
    finally:
        stop_process(worker)
    row = ScheduledJob.get(ScheduledJob.type == "cleanup_job_history")
    assert Job.get_by_id(row.last_run_job_id).status == "completed"


def test_a_request_progress_bar_follows_the_download_to_100(page, live_url, redis_conn):
    book = Audiobook.create(title=HOSTILE, author="Author")
    request = Request.create(audiobook=book, status="downloading", progress=0)
    login(page, live_url)
    page.goto(f"{live_url}/admin/requests")
    bar = page.locator(f'tr[data-request="{request.id}"] progress')
    assert bar.get_attribute("value") == "0"
    for progress in (35, 70, 100):
        update_progress(request.id, progress)  # what monitor_download does on each poll
        expect(bar).to_have_attribute("value", str(progress), timeout=10_000)
    assert page.evaluate("window.__pwned === undefined")
    assert HOSTILE in page.inner_text(f'tr[data-request="{request.id}"]')
    screenshot(page, "request-progress-100")

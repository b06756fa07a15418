"""A request's whole story: the request page's one timeline of every event of every job,
oldest first; the logs page's "page x of y (n jobs)"; a polled or retried job's whole duration next to its
last run's. Through HTTP on real PostgreSQL (the pipeline end to end: tests/end_to_end/test_end_to_end.py)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import expect

from app.models import Audiobook, Job, JobEvent, Request, utcnow
from app.reports.durations import Durations, RowTimes, durations, human

from helpers import HOSTILE, login

T0 = datetime(2026, 12, 1, 10, 0, 0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(job: Job, seconds: float, message: str, level: str = "info", metadata=None) -> None:
    JobEvent.create(job=job, level=level, context=job.type, message=message, metadata=metadata,
                    created_at=at(seconds))


def timeline(html: str) -> list[tuple[str, str, str]]:
    """(time, job type, message) of each timeline row, top to bottom; each row's link leads to its job."""
    table = html.split('<table id="timeline">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr class="event[^"]*" data-job-id="([^"]+)">\s*<td>([^<]*)</td>\s*<td><a href="([^"]+)">'
                      r'([^<]+)</a></td>\s*<td>[^<]*</td>\s*<td class="event-message">([^<]*?)\s*(?:<details|</td>)',
                      table)
    assert all(href == f"/admin/jobs/{job_id}" and Job.get_or_none(Job.id == job_id) for job_id, _, href, _, _ in rows)
    return [(t, kind, message.strip()) for _, t, _, kind, message in rows]


@pytest.fixture
def book_request():
    book = Audiobook.create(title=f"Elantris {HOSTILE}", author="Brandon Sanderson")
    return Request.create(audiobook=book, status="available", created_at=at(-10), completed_at=at(500))


def test_the_request_page_tells_every_event_of_every_job_oldest_first(admin_client, book_request):
    other = Request.create(audiobook=Audiobook.create(title="Warbreaker", author="Brandon Sanderson"),
                           created_at=at(-10))
    # created in another order than they ran: the timeline follows the events' times, across jobs
    organize = Job.create(request=book_request, type="organize_files", status="completed", created_at=at(300))
    search = Job.create(request=book_request, type="search_indexers", status="completed", created_at=at(0))
    grab = Job.create(request=book_request, type="download_torrent", status="completed", created_at=at(20))
    monitor = Job.create(request=book_request, type="monitor_download", status="completed", polls=40,
                         created_at=at(30))
    plex = Job.create(type="plex_recently_added_check", status="completed", created_at=at(400))
    stranger = Job.create(request=other, type="search_indexers", status="completed", created_at=at(0))
    event(organize, 310, "Copied 2 files into the library")
    event(monitor, 100, "Downloading: 50% (downloading)", metadata={"progress": 50})
    event(search, 5, "Found 3 releases")
    event(monitor, 40, "Downloading: 0% (metaDL)")
    event(grab, 25, f"Added torrent {HOSTILE}")
    event(monitor, 290, "Download complete")
    event(search, 6, "Chose release A", level="warn")
    event(plex, 401, "'Elantris' is in Plex: available", metadata={"requestId": str(book_request.id)})
    event(plex, 402, "'Warbreaker' is in Plex: available", metadata={"requestId": str(other.id)})
    event(plex, 403, "Checked 40 recently added items")  # the check's own summary: about no request
    event(stranger, 7, "Another request's search")

    response = admin_client.get(f"/admin/requests/{book_request.id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert HOSTILE not in html and "&lt;script&gt;" in html  # titles and messages are text
    escaped_hostile = HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
    assert timeline(html) == [
        ("2026-12-01 10:00:05", "Search Indexers", "Found 3 releases"),
        ("2026-12-01 10:00:06", "Search Indexers", "Chose release A"),
        ("2026-12-01 10:00:25", "Download Torrent", f"Added torrent {escaped_hostile}"),
        ("2026-12-01 10:00:40", "Monitor Download", "Downloading: 0% (metaDL)"),
        ("2026-12-01 10:01:40", "Monitor Download", "Downloading: 50% (downloading)"),
        ("2026-12-01 10:04:50", "Monitor Download", "Download complete"),
        ("2026-12-01 10:05:10", "Organize Files", "Copied 2 files into the library"),
        ("2026-12-01 10:06:41", "Plex Recently Added Check", "&#39;Elantris&#39; is in Plex: available"),
    ]
    partial = admin_client.get(f"/admin/requests/{book_request.id}?partial=1").get_data(as_text=True)
    assert timeline(partial) == timeline(html) and "<html" not in partial  # what the page's refresh fetches
    # the jobs table lists the request's own jobs, in the order they were created
    jobs = html.split('<table id="request-jobs">', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'data-job-id="([^"]+)"', jobs) == [str(j.id) for j in (search, grab, monitor, organize)]
    assert "(40 polls)" in jobs


def test_the_request_page_refuses_anonymous_users_and_unknown_requests(client, admin_client, book_request):
    anonymous = client.get(f"/admin/requests/{book_request.id}")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert admin_client.get("/admin/requests/3f1c0d1e-0000-4000-8000-000000000000").status_code == 404
    assert admin_client.get("/admin/requests/not-a-uuid").status_code == 404
    listed = admin_client.get("/admin/requests").get_data(as_text=True)
    assert f'href="/admin/requests/{book_request.id}" class="book-title"' in listed  # the list links to it


def pager(html: str) -> str:
    return re.search(r'<span class="page-of">([^<]*)</span>', html).group(1)


def test_the_logs_page_says_page_x_of_y_and_how_many_jobs_match(admin_client):
    for i in range(53):
        Job.create(type="noop", status="failed" if i % 4 == 0 else "completed", created_at=utcnow())
    assert pager(admin_client.get("/admin/logs").get_data(as_text=True)) == "page 1 of 3 (53 jobs)"
    assert pager(admin_client.get("/admin/logs?page=3").get_data(as_text=True)) == "page 3 of 3 (53 jobs)"
    assert pager(admin_client.get("/admin/logs?per_page=50&page=2").get_data(as_text=True)) == "page 2 of 2 (53 jobs)"
    assert pager(admin_client.get("/admin/logs?status=failed").get_data(as_text=True)) == "page 1 of 1 (14 jobs)"
    assert pager(admin_client.get("/admin/logs?partial=1&page=2").get_data(as_text=True)) == "page 2 of 3 (53 jobs)"
    assert pager(admin_client.get("/admin/logs?status=stuck").get_data(as_text=True)) == "page 1 of 1 (0 jobs)"
    Job.delete().execute()
    Job.create(type="noop", status="completed")
    assert pager(admin_client.get("/admin/logs").get_data(as_text=True)) == "page 1 of 1 (1 job)"


ONE_RUN = RowTimes(started_at=at(10), completed_at=at(12.5), first_event_at=at(11))


@pytest.mark.parametrize("chain, expected", [
    ([ONE_RUN], Durations(last_run=2.5, whole=2.5, runs_many=False)),
    # monitor_download: every poll rewrites started_at; its first poll's events are 10 minutes older
    ([RowTimes(started_at=at(600), completed_at=at(601), first_event_at=at(0), polls=60)],
     Durations(last_run=1.0, whole=601.0, runs_many=True)),
    # attempted again in the same row: the failed attempt left its event
    ([RowTimes(started_at=at(20), completed_at=at(21), first_event_at=at(2), attempts=2)],
     Durations(last_run=1.0, whole=19.0, runs_many=True)),
    # an admin's retry: a new row; the whole runs from the failed row's first start
    ([RowTimes(started_at=at(0), completed_at=at(5), first_event_at=at(1)),
      RowTimes(started_at=at(60), completed_at=at(70), first_event_at=None)],
     Durations(last_run=10.0, whole=70.0, runs_many=True)),
    # still polling: no end yet
    ([RowTimes(started_at=at(50), completed_at=None, first_event_at=at(0), polls=5)],
     Durations(last_run=None, whole=None, runs_many=True)),
    # never started (cancelled while queued)
    ([RowTimes(started_at=None, completed_at=at(3), first_event_at=None)],
     Durations(last_run=None, whole=None, runs_many=False)),
])
def test_durations_last_run_and_whole(chain, expected):
    assert durations(chain) == expected


@pytest.mark.parametrize("seconds, text", [(None, "–"), (0.25, "0.2 s"), (119.9, "119.9 s"), (120, "2.0 min"),
                                           (601, "10.0 min"), (7200, "2.0 h"), (27000, "7.5 h")])
def test_human_durations(seconds, text):
    assert human(seconds) == text


def duration_cell(html: str) -> str:
    cell = re.search(r'<td id="job-duration">(.*?)</td>', html, re.S).group(1)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cell)).strip()


def test_a_polled_or_retried_job_shows_its_whole_duration_next_to_the_last_runs(admin_client, book_request):
    polled = Job.create(request=book_request, type="monitor_download", status="completed", attempts=1, polls=60,
                        started_at=at(600), completed_at=at(601), created_at=at(0))
    event(polled, 1, "Downloading: 0% (metaDL)")
    failed = Job.create(request=book_request, type="search_indexers", status="failed", attempts=3,
                        started_at=at(30), completed_at=at(35), created_at=at(0))
    event(failed, 2, "Attempt failed: Prowlarr timed out. Retrying in 2 s", level="warn")
    middle = Job.create(request=book_request, type="search_indexers", status="failed", attempts=1,
                        started_at=at(100), completed_at=at(101), created_at=at(99))
    retried = Job.create(request=book_request, type="search_indexers", status="completed", attempts=1,
                         started_at=at(200), completed_at=at(212), created_at=at(199))
    Job.update(retried_at=at(99), retry_job_id=middle.id).where(Job.id == failed.id).execute()
    Job.update(retried_at=at(199), retry_job_id=retried.id).where(Job.id == middle.id).execute()
    single = Job.create(request=book_request, type="organize_files", status="completed", attempts=1,
                        started_at=at(700), completed_at=at(703), created_at=at(699))
    event(single, 700.5, "Copied")

    def shown(job: Job) -> str:
        return duration_cell(admin_client.get(f"/admin/jobs/{job.id}").get_data(as_text=True))

    assert shown(polled) == "1.0 s (whole: 10.0 min)"
    assert shown(retried) == "12.0 s (whole: 3.5 min)"   # from the first row's first event (T0 + 2 s) to the end
    assert shown(middle) == "1.0 s (whole: 99.0 s)"      # a retried row: its own chain so far
    assert shown(single) == "3.0 s"
    logs = admin_client.get("/admin/logs").get_data(as_text=True)
    cells = {job_id: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cell)).strip() for job_id, cell in re.findall(
        r'<tr class="job-row" data-job-id="([^"]+)">.*?<td>(<span class="run-duration">.*?)</td>', logs, re.S)}
    assert cells == {str(polled.id): "1.0 s (whole: 10.0 min)", str(retried.id): "12.0 s (whole: 3.5 min)",
                     str(middle.id): "1.0 s (whole: 99.0 s)", str(failed.id): "5.0 s (whole: 33.0 s)",
                     str(single.id): "3.0 s"}


def test_in_the_browser_a_title_opens_its_story_and_a_job_its_durations(page, live_url, book_request):
    search = Job.create(request=book_request, type="search_indexers", status="completed", created_at=at(0))
    monitor = Job.create(request=book_request, type="monitor_download", status="completed", polls=60,
                         started_at=at(600), completed_at=at(601), created_at=at(20))
    event(search, 5, "Found 3 releases")
    event(monitor, 30, "Downloading: 0% (metaDL)")
    event(monitor, 590, "Downloading: 100% (uploading)")
    login(page, live_url)
    expect(page.locator(".page-of")).to_have_text("page 1 of 1 (2 jobs)")
    page.goto(f"{live_url}/admin/requests")
    page.locator(f'tr[data-request="{book_request.id}"] a.book-title').click()
    page.wait_for_url(f"{live_url}/admin/requests/{book_request.id}")
    rows = page.locator("#timeline tbody tr.event")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Found 3 releases")
    expect(rows.last).to_contain_text("Downloading: 100% (uploading)")
    assert page.evaluate("window.__pwned === undefined")  # the hostile title stayed text
    rows.last.locator("a").click()
    page.wait_for_url(f"{live_url}/admin/jobs/{monitor.id}")
    expect(page.locator("#job-duration")).to_have_text("1.0 s (whole: 9.5 min)")  # from its first event

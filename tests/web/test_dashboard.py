"""Dashboard routes with the Flask test client: access, CSRF, filters, pagination, escaping, actions."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.models import Audiobook, Job, JobEvent, Request, ScheduledJob
from app.schedules.defaults import ensure_default_schedules

from helpers import drain

PAGES = ["/admin/logs", "/admin/scheduled", "/admin/queues", "/admin/requests"]
HOSTILE = '<script>alert("x")</script>"><img src=x onerror=alert(1)>'


def _token(client, path="/admin/logs") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


@pytest.mark.parametrize("path", PAGES + ["/admin/jobs/00000000-0000-0000-0000-000000000000"])
def test_pages_send_anonymous_users_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", ["/api/admin/logs", "/metrics", "/api/admin/jobs"])
def test_apis_refuse_anonymous_users(client, path):
    assert client.get(path).status_code == 401


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_the_admin(admin_client, settings, redis_conn, path):
    ensure_default_schedules(settings)
    response = admin_client.get(path)
    assert response.status_code == 200 and "<h1>" in response.get_data(as_text=True)


def test_logs_filters_pagination_and_escaping(admin_client, redis_conn):
    book = Audiobook.create(title=f"The Way of Kings {HOSTILE}", author="Brandon Sanderson")
    request = Request.create(audiobook=book)
    old = Job.create(type="noop", status="completed", created_at=datetime(2026, 1, 5), request=request)
    JobEvent.create(job=old, level="error", context="Test", message=f"disk full {HOSTILE}")
    for i in range(30):
        Job.create(type="scan_plex", status="failed" if i % 2 else "completed",
                   created_at=datetime(2026, 2, 1) + timedelta(minutes=i), error_message=f"err {i}")

    page = admin_client.get("/admin/logs?per_page=25").get_data(as_text=True)
    assert page.count('class="job-row"') == 25 and "older →" in page
    assert "<script>alert" not in page
    second = admin_client.get("/admin/logs?per_page=25&page=2").get_data(as_text=True)
    assert second.count('class="job-row"') == 6 and "← newer" in second
    page = admin_client.get("/admin/logs?status=failed&per_page=50").get_data(as_text=True)
    assert page.count('class="job-row"') == 15
    assert admin_client.get("/admin/logs?level=error").get_data(as_text=True).count('class="job-row"') == 1
    assert admin_client.get("/admin/logs?q=DISK+FULL").get_data(as_text=True).count('class="job-row"') == 1
    found = admin_client.get("/admin/logs?q=way+of+kings").get_data(as_text=True)
    assert found.count('class="job-row"') == 1
    assert "<script>alert" not in found and "&lt;script&gt;alert" in found  # the title, escaped
    assert admin_client.get("/admin/logs?q=err+7").get_data(as_text=True).count('class="job-row"') == 1
    assert admin_client.get("/admin/logs?since=2026-01-01&until=2026-01-31").get_data(as_text=True).count(
        'class="job-row"') == 1
    assert admin_client.get("/admin/logs?errors=1&per_page=100").get_data(as_text=True).count('class="job-row"') == 16
    bad = admin_client.get("/admin/logs?status=nope").get_data(as_text=True)
    assert "unknown status" in bad
    details = admin_client.get(f"/admin/logs/{old.id}/details").get_data(as_text=True)
    assert "disk full" in details and "<img src=x" not in details
    partial = admin_client.get("/admin/logs?partial=1").get_data(as_text=True)
    assert "<html" not in partial and 'class="job-row"' in partial


def test_the_logs_api_has_the_same_filters_and_pagination(client, redis_conn, bearer):
    for i in range(3):
        job = Job.create(type="noop", status="failed", error_message="boom")
        JobEvent.create(job=job, level="error", context="T", message=f"event {i}")
    body = client.get("/api/admin/logs?status=failed&per_page=25&events=1", headers=bearer).get_json()
    assert body["pagination"] == {"page": 1, "perPage": 25, "hasNext": False, "hasPrevious": False}
    assert len(body["jobs"]) == 3 and body["jobs"][0]["events"][0]["level"] == "error"
    assert client.get("/api/admin/logs?per_page=7", headers=bearer).status_code == 400
    assert client.get("/api/admin/logs?since=yesterday", headers=bearer).status_code == 400


def test_job_retry_and_cancel_need_csrf_and_follow_the_rules(admin_client, redis_conn):
    failed = Job.create(type="noop", status="failed", payload={"x": 1, "jobId": "old"})
    assert admin_client.post(f"/admin/jobs/{failed.id}/retry").status_code == 400  # no CSRF token
    token = _token(admin_client, f"/admin/jobs/{failed.id}")
    response = admin_client.post(f"/admin/jobs/{failed.id}/retry", data={"csrf_token": token})
    new_id = response.headers["Location"].rsplit("/", 1)[-1]
    new = Job.get_by_id(new_id)
    assert new.type == "noop" and new.status == "pending" and new.payload["x"] == 1 and new.payload["jobId"] == new_id
    response = admin_client.post(f"/admin/jobs/{new_id}/cancel", data={"csrf_token": token}, follow_redirects=True)
    assert Job.get_by_id(new_id).status == "cancelled" and "Job cancelled." in response.get_data(as_text=True)
    refused = admin_client.post(f"/admin/jobs/{new_id}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "only failed jobs can be retried (this one is cancelled)" in refused.get_data(as_text=True)


def test_trigger_now_and_schedule_edits_from_the_page(admin_client, settings, redis_conn):
    ensure_default_schedules(settings)
    row = ScheduledJob.get(ScheduledJob.type == "cleanup_job_history")
    token = _token(admin_client, "/admin/scheduled")
    started = admin_client.post(f"/admin/scheduled/{row.id}/trigger", data={"csrf_token": token})
    job_id = started.headers["Location"].split("started=")[1]
    page = admin_client.get(f"/admin/scheduled?started={job_id}").get_data(as_text=True)
    assert f"/api/admin/job-status/{job_id}" in page
    bad = admin_client.post(f"/admin/scheduled/{row.id}", data={"csrf_token": token, "schedule": "nope",
                                                                  "enabled": "on"}, follow_redirects=True)
    assert "Not saved: schedule: cron string must have 5 fields" in bad.get_data(as_text=True)
    admin_client.post(f"/admin/scheduled/{row.id}", data={"csrf_token": token, "schedule": "0 4 * * *"})
    row = ScheduledJob.get_by_id(row.id)
    assert row.schedule == "0 4 * * *" and not row.enabled  # the unchecked box disables it
    plex = ScheduledJob.get(ScheduledJob.type == "scan_plex")
    refused = admin_client.post(f"/admin/scheduled/{plex.id}/trigger", data={"csrf_token": token},
                                follow_redirects=True)
    assert "needs Plex to be configured" in refused.get_data(as_text=True)


def test_queues_page_counts_and_requeues_failed(admin_client, settings, use_settings, redis_conn):
    use_settings(JOB_MAX_ATTEMPTS=1)
    import jobtypes  # noqa: F401

    for _ in range(2):
        add_job("test_fail", {})
    add_job("test_record", {"tag": "waiting"})
    drain(queue_names_for_group("testing"), until=lambda: Job.select().where(Job.status == "failed").count() == 2)
    page = admin_client.get("/admin/queues").get_data(as_text=True)
    row = re.search(r'<tr data-type="test_fail">(.*?)</tr>', page, re.S).group(1)
    assert '<td class="failed">2</td>' in row and "Requeue 2 failed" in row  # failed, not yet retried
    token = _token(admin_client, "/admin/queues")
    admin_client.post("/admin/queues/test_fail/requeue-failed", data={"csrf_token": token})
    assert Job.select().where((Job.type == "test_fail") & (Job.status == "pending")).count() == 2


def test_requests_page_shows_progress_and_the_job_timeline(admin_client, redis_conn):
    book = Audiobook.create(title=HOSTILE, author="A")
    request = Request.create(audiobook=book, status="downloading", progress=42)
    Job.create(type="search_indexers", status="completed", request=request)
    Job.create(type="monitor_download", status="delayed", request=request)
    page = admin_client.get("/admin/requests").get_data(as_text=True)
    assert '<progress max="100" value="42">' in page and "Search Indexers" in page and "Monitor Download" in page
    assert "<script>alert" not in page


def test_metrics_count_every_run_with_prometheus_types_and_survive_history_cleanup(client, redis_conn,
                                                                                   use_settings, bearer):
    """Counters and the duration histogram come from prometheus_client with correct types; they are fed
    by each run's end (in Redis), so deleting the job history does not make a counter go down."""
    from prometheus_client.parser import text_string_to_metric_families

    from app.jobs.queues import queue_names_for_group
    from app.jobs.retention import cleanup_job_history
    from app.jobs.service import add_job

    import jobtypes  # noqa: F401
    from helpers import drain

    use_settings(JOB_MAX_ATTEMPTS=1)
    for _ in range(3):
        add_job("noop", {})
    failed = add_job("test_fail", {})
    drain(queue_names_for_group("maintenance"))
    drain(queue_names_for_group("testing"))
    assert Job.get_by_id(failed).status == "failed"

    def scrape() -> dict:
        response = client.get("/metrics", headers=bearer)
        assert response.status_code == 200 and response.mimetype == "text/plain"
        return {family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))}

    families = scrape()
    assert families["rmab_job_runs"].type == "counter"
    assert families["rmab_job_duration_seconds"].type == "histogram"
    assert families["rmab_queue_depth"].type == "gauge" and families["rmab_live_workers"].type == "gauge"
    runs = {(s.labels["type"], s.labels["outcome"]): s.value for s in families["rmab_job_runs"].samples
            if s.name == "rmab_job_runs_total"}
    assert runs[("noop", "completed")] == 3 and runs[("test_fail", "failed")] == 1
    counts = {s.labels["type"]: s.value for s in families["rmab_job_duration_seconds"].samples
              if s.name == "rmab_job_duration_seconds_count"}
    assert counts["noop"] == 3 and counts["test_fail"] == 1
    infinite = [s.value for s in families["rmab_job_duration_seconds"].samples
                if s.name == "rmab_job_duration_seconds_bucket" and s.labels == {"type": "noop", "le": "+Inf"}]
    assert infinite == [3.0]

    Job.update(created_at=datetime(2000, 1, 1)).execute()
    assert cleanup_job_history(30)["jobsDeleted"] == 4
    again = {(s.labels["type"], s.labels["outcome"]): s.value for s in scrape()["rmab_job_runs"].samples
             if s.name == "rmab_job_runs_total"}
    assert again == runs  # the history is gone, the counters are not


def test_histogram_buckets_are_cumulative():
    from app.web.metrics import histogram_buckets

    buckets = dict(histogram_buckets({"0.01": 2, "1.0": 1, "+Inf": 1}))
    assert buckets["0.01"] == 2 and buckets["0.5"] == 2 and buckets["1.0"] == 3 and buckets["+Inf"] == 4


def test_five_failed_logins_block_the_address(client, redis_conn):
    from helpers import ADMIN_PASSWORD

    for _ in range(5):
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                          client.get("/login").get_data(as_text=True)).group(1)
        failed = client.post("/login", data={"username": "admin", "password": "bad", "csrf_token": token})
        assert failed.status_code == 401
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    blocked = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.get_data(as_text=True)

"""Admin actions: Retry (failed only, once, re-entering the request's step), Requeue failed (the count shown is
the set acted on, once) and Trigger Now (refused while the schedule's previous run is unfinished)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from app.admin_actions import retries
from app.admin_actions.retries import RequeueOutcome, requeue_message
from app.audiobook_requests.pipeline import STEP_STATUS
from app.jobs.errors import EnqueueFailed
from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.models import Audiobook, Job, Request, ScheduledJob, utcnow
from app.schedules.defaults import ensure_default_schedules
from app.schedules.service import TRIGGER_LOCK

from helpers import drain

STEP_PAYLOADS = {
    "search_indexers": lambda r: {"requestId": str(r.id), "audiobook": {"id": str(r.audiobook_id), "title": "T",
                                                                        "author": "A", "asin": None}},
    "download_torrent": lambda r: {"requestId": str(r.id), "audiobook": {"title": "T", "author": "A"},
                                   "torrent": {"title": "T - A", "downloadUrl": "http://127.0.0.1:1/t"}},
    "monitor_download": lambda r: {"requestId": str(r.id), "downloadHistoryId": "h", "downloadClientId": "ab" * 20,
                                   "downloadClient": "qbittorrent"},
    "organize_files": lambda r: {"requestId": str(r.id), "audiobookId": str(r.audiobook_id), "downloadPath": "/d"},
}


def _token(client, path="/admin/logs") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _post(client, path: str, **kwargs):
    """A session-authenticated POST with the CSRF token (forms and the JSON API alike)."""
    return client.post(path, headers={"X-CSRFToken": _token(client)}, **kwargs)


def _request(status: str, error: str | None = "Import failed: disk full") -> Request:
    book = Audiobook.create(title="The Way of Kings", author="Brandon Sanderson")
    return Request.create(audiobook=book, status=status, error_message=error)


def _failed_step(job_type: str, request: Request, **fields) -> Job:
    return Job.create(type=job_type, status="failed", request=request, payload=STEP_PAYLOADS[job_type](request),
                      error_message="boom", **fields)


def _flash(response) -> str:
    return " ".join(re.findall(r'<div class="flash" role="alert">(.*?)</div>', response.get_data(as_text=True)))


# --- Retry ----------------------------------------------------------------------------------

def test_a_stuck_job_is_not_retried_by_hand_because_rq_retries_it(admin_client, redis_conn):
    stuck = Job.create(type="noop", status="stuck", payload={"x": 1})
    page = admin_client.get(f"/admin/jobs/{stuck.id}").get_data(as_text=True)
    assert f"/admin/jobs/{stuck.id}/retry" not in page and "RQ retries it by itself" in page

    refused = _post(admin_client, f"/admin/jobs/{stuck.id}/retry", follow_redirects=True)
    assert "Not retried: only failed jobs can be retried (this one is stuck" in _flash(refused)
    api = _post(admin_client, f"/api/admin/job-retry/{stuck.id}")
    assert api.status_code == 409 and api.get_json()["success"] is False
    assert "only failed jobs can be retried" in api.get_json()["error"]
    assert Job.select().count() == 1


@pytest.mark.parametrize("job_type,step_status", sorted((t, s.value) for t, s in STEP_STATUS.items()))
def test_retrying_a_step_of_a_failed_request_moves_the_request_back_into_that_step(admin_client, redis_conn,
                                                                                    job_type, step_status):
    request = _request("failed")
    failed = _failed_step(job_type, request)
    response = _post(admin_client, f"/admin/jobs/{failed.id}/retry")
    new = Job.get_by_id(response.headers["Location"].rsplit("/", 1)[-1])
    assert new.type == job_type and new.status in ("pending", "delayed") and str(new.request_id) == str(request.id)
    request = Request.get_by_id(request.id)
    assert request.status == step_status and request.error_message is None


@pytest.fixture
def library_dirs(tmp_path, use_settings, redis_conn):
    downloads, media = tmp_path / "downloads", tmp_path / "media"
    (downloads / "The Way of Kings").mkdir(parents=True)
    (downloads / "The Way of Kings" / "book.m4b").write_bytes(b"audio" * 100)
    media.mkdir()
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media))
    return downloads, media


def test_a_retried_import_of_a_failed_request_really_runs_and_imports(library_dirs, admin_client):
    downloads, media = library_dirs
    request = _request("failed", error="Import failed: [Errno 28] No space left on device")
    failed = Job.create(type="organize_files", status="failed", request=request, error_message="disk full",
                        payload={"requestId": str(request.id), "audiobookId": str(request.audiobook_id),
                                 "downloadPath": str(downloads / "The Way of Kings")})
    started = _post(admin_client, f"/admin/jobs/{failed.id}/retry")
    new_id = started.headers["Location"].rsplit("/", 1)[-1]
    drain(queue_names_for_group("organize_files"))

    run = Job.get_by_id(new_id)
    assert run.status == "completed" and run.result["success"] is True  # not "skipped"
    request = Request.get_by_id(request.id)
    assert request.status == "downloaded" and request.error_message is None
    assert (media / "Brandon Sanderson" / "The Way of Kings" / "book.m4b").exists()


@pytest.mark.parametrize("job_type,request_status", [
    ("organize_files", "cancelled"),
    ("organize_files", "available"),
    ("search_indexers", "downloading"),    # a later step
    ("download_torrent", "downloading"),   # a retry elsewhere already runs this step
    ("monitor_download", "pending"),
])
def test_a_retry_is_refused_when_the_request_is_not_failed(admin_client, redis_conn, job_type, request_status):
    request = _request(request_status, error=None)
    failed = _failed_step(job_type, request)
    page = _post(admin_client, f"/admin/jobs/{failed.id}/retry", follow_redirects=True)
    assert f"Not retried: its request is {request_status}, not failed" in _flash(page)
    response = _post(admin_client, f"/api/admin/job-retry/{failed.id}")
    assert response.status_code == 409
    assert response.get_json()["error"] == (f"its request is {request_status}, not failed: a {job_type} job is "
                                            f"retried only while its request is failed")
    assert Job.select().count() == 1 and Request.get_by_id(request.id).status == request_status
    assert Job.get_by_id(failed.id).retried_at is None  # not claimed: retryable once the request fails again


def test_a_stale_search_job_of_a_failed_request_does_not_resurrect_it(settings, redis_conn):
    request = _request("failed", error="Prowlarr is down")
    job_id = add_job("search_indexers", STEP_PAYLOADS["search_indexers"](request))
    drain(queue_names_for_group("search_indexers"))
    assert Job.get_by_id(job_id).result == {"success": False, "skipped": True}
    request = Request.get_by_id(request.id)
    assert request.status == "failed" and request.error_message == "Prowlarr is down"


def test_a_second_retry_of_the_same_row_is_refused_naming_the_run_already_started(admin_client, redis_conn):
    failed = Job.create(type="noop", status="failed", payload={"x": 1, "jobId": "old"})
    first = _post(admin_client, f"/admin/jobs/{failed.id}/retry")
    new_id = first.headers["Location"].rsplit("/", 1)[-1]
    again = _post(admin_client, f"/admin/jobs/{failed.id}/retry", follow_redirects=True)
    assert f"Not retried: already retried: run {new_id} was started" in _flash(again)
    api = _post(admin_client, f"/api/admin/job-retry/{failed.id}")
    assert api.status_code == 409 and api.get_json()["retryJobId"] == new_id
    assert f"already retried: run {new_id}" in api.get_json()["error"]

    assert Job.select().where(Job.type == "noop").count() == 2  # one new run, not three
    row = Job.get_by_id(failed.id)
    assert str(row.retry_job_id) == new_id and row.retried_at is not None
    page = admin_client.get(f"/admin/jobs/{failed.id}").get_data(as_text=True)
    assert f'href="/admin/jobs/{new_id}" id="retry-run"' in page and 'class="retry"' not in page
    status = admin_client.get(f"/api/admin/job-status/{failed.id}").get_json()["job"]
    assert status["retryJobId"] == new_id and status["retriedAt"] is not None


def test_a_retry_that_could_not_start_releases_its_claim_and_the_request(settings, use_settings, redis_conn):
    request = _request("failed")
    failed = _failed_step("organize_files", request)
    use_settings(REDIS_URL="redis://127.0.0.1:1/0")
    with pytest.raises(EnqueueFailed):
        retries.retry_job(failed.id)
    assert Job.get_by_id(failed.id).retried_at is None
    request = Request.get_by_id(request.id)
    assert request.status == "failed" and "could not start" in request.error_message

    use_settings()  # Redis is back: the same row can be retried now
    new_id = retries.retry_job(failed.id)
    assert str(Job.get_by_id(failed.id).retry_job_id) == new_id
    assert Request.get_by_id(request.id).status == "processing"


# --- Requeue failed -------------------------------------------------------------------------

def _queue_row(page: str, job_type: str) -> str:
    return re.search(rf'<tr data-type="{job_type}">(.*?)</tr>', page, re.S).group(1)


@pytest.mark.slow
def test_requeue_failed_acts_on_exactly_the_count_shown_all_of_them_and_only_once(admin_client, redis_conn):
    start = datetime(2026, 3, 1)
    Job.insert_many([{"type": "noop", "status": "failed", "payload": {"n": i},
                      "created_at": start + timedelta(seconds=i)} for i in range(150)]).execute()
    for _ in range(2):  # retried already: neither counted nor requeued
        Job.create(type="noop", status="failed", retried_at=utcnow(), payload={})
    _failed_step("search_indexers", _request("available"))  # its request moved on: not retryable
    twice_failed = _request("failed")
    superseded = _failed_step("download_torrent", twice_failed, created_at=start)
    latest = _failed_step("download_torrent", twice_failed, created_at=start + timedelta(hours=1))

    page = admin_client.get("/admin/queues").get_data(as_text=True)
    noop = _queue_row(page, "noop")
    assert '<td class="failed">150</td>' in noop and "Requeue 150 failed" in noop
    assert '<td class="failed">0</td>' in _queue_row(page, "search_indexers")
    assert "Requeue" not in _queue_row(page, "search_indexers")
    assert "Requeue 1 failed" in _queue_row(page, "download_torrent")

    first = _post(admin_client, "/admin/queues/noop/requeue-failed", follow_redirects=True)
    assert _flash(first) == "Requeued 150 failed noop job(s) as new runs."
    assert Job.select().where((Job.type == "noop") & (Job.status == "pending")).count() == 150
    assert Job.select().where((Job.type == "noop") & Job.retry_job_id.is_null(False)).count() == 150

    second = _post(admin_client, "/admin/queues/noop/requeue-failed", follow_redirects=True)
    assert _flash(second) == "Nothing to requeue: no failed noop jobs that were not already retried."
    assert Job.select().where((Job.type == "noop") & (Job.status == "pending")).count() == 150
    assert "Requeue" not in _queue_row(second.get_data(as_text=True), "noop")

    api = _post(admin_client, "/api/admin/requeue-failed/download_torrent").get_json()
    assert api["requeued"] == 1 and api["refused"] == [] and api["success"] is True
    assert str(Job.get_by_id(latest.id).retry_job_id) == api["jobIds"][0]
    assert Job.get_by_id(superseded.id).retried_at is None
    assert Request.get_by_id(twice_failed.id).status == "downloading"
    assert _post(admin_client, "/api/admin/requeue-failed/no_such_type").status_code == 404


@pytest.mark.parametrize("outcome,message", [
    (RequeueOutcome(), "Nothing to requeue: no failed noop jobs that were not already retried."),
    (RequeueOutcome(started=["a", "b"]), "Requeued 2 failed noop job(s) as new runs."),
    (RequeueOutcome(started=["a"], refused=[("j1", "its request is cancelled"), ("j2", "x")]),
     "Requeued 1 failed noop job(s) as new runs. 2 not requeued (job j1: its request is cancelled)."),
    (RequeueOutcome(stopped="Redis is down"),
     "Requeued 0 failed noop job(s) as new runs. Stopped early, the rest stay failed: Redis is down"),
])
def test_the_requeue_message_says_what_happened(outcome, message):
    assert requeue_message("noop", outcome) == message


# --- Trigger Now ----------------------------------------------------------------------------

def _schedule_with_run(settings, status: str) -> tuple[ScheduledJob, Job]:
    ensure_default_schedules(settings)
    row = ScheduledJob.get(ScheduledJob.type == "cleanup_job_history")
    run = Job.create(type=row.type, status=status, scheduled_job_id=row.id, payload={})
    ScheduledJob.update(last_run_job_id=run.id, last_run=utcnow()).where(ScheduledJob.id == row.id).execute()
    return ScheduledJob.get_by_id(row.id), run


@pytest.mark.parametrize("status", ["pending", "delayed", "active", "stuck"])
def test_trigger_now_is_refused_while_the_previous_run_is_unfinished(admin_client, settings, redis_conn, status):
    row, run = _schedule_with_run(settings, status)
    response = _post(admin_client, f"/api/admin/jobs/{row.id}/trigger")
    assert response.status_code == 409
    assert response.get_json() == {"success": False, "runningJobId": str(run.id),
                                   "error": f"Job History Cleanup is still running: job {run.id} ({status})"}
    assert Job.select().count() == 1

    Job.update(status="completed").where(Job.id == run.id).execute()
    allowed = _post(admin_client, f"/api/admin/jobs/{row.id}/trigger")
    assert allowed.status_code == 200 and Job.select().count() == 2


def test_trigger_now_refusal_on_the_page_and_the_cli(admin_client, flask_app, settings, redis_conn):
    row, run = _schedule_with_run(settings, "active")
    page = _post(admin_client, f"/admin/scheduled/{row.id}/trigger", follow_redirects=True)
    assert _flash(page) == f"Not started: Job History Cleanup is still running: job {run.id} (active)"
    cli = flask_app.test_cli_runner().invoke(args=["trigger", "Job History Cleanup"])
    assert cli.exit_code != 0 and f"still running: job {run.id} (active)" in cli.output
    assert Job.select().count() == 1


def test_a_retry_of_a_schedule_run_counts_as_its_unfinished_run(admin_client, settings, redis_conn):
    row, run = _schedule_with_run(settings, "failed")
    retry_id = retries.retry_job(run.id)  # carries the schedule id; last_run_job_id still names the failed run
    response = _post(admin_client, f"/api/admin/jobs/{row.id}/trigger")
    assert response.status_code == 409 and response.get_json()["runningJobId"] == retry_id


def test_two_simultaneous_triggers_start_one_run(admin_client, settings, redis_conn):
    ensure_default_schedules(settings)
    row = ScheduledJob.get(ScheduledJob.type == "cleanup_job_history")
    redis_conn.set(TRIGGER_LOCK.format(id=row.id), "held by the first click")
    response = _post(admin_client, f"/api/admin/jobs/{row.id}/trigger")
    assert response.status_code == 409
    assert response.get_json()["error"] == "Job History Cleanup is being started by another Trigger Now right now"
    assert Job.select().count() == 0

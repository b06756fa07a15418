"""Schedules: defaults, cron handling, rq-scheduler sync, one run per tick, Trigger Now, the jobs API, lateness."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import pytest
from rq_scheduler import Scheduler as ScheduleTimer

from app.jobs.queues import queue_names_for_group
from app.models import Job, JobEvent, ScheduledJob
from app.schedules import timer
from app.schedules.cron import InvalidSchedule, describe, next_fire_time, validate_cron
from app.schedules.defaults import DEFAULT_SCHEDULES, ensure_default_schedules
from app.schedules.service import late_reason, trigger_job_now

from helpers import drain, start_process, stop_process, wait_for

T0 = datetime(2026, 3, 10, 12, 2, 30)  # a Tuesday, 12:02:30 UTC


def _row(job_type: str) -> ScheduledJob:
    return ScheduledJob.get(ScheduledJob.type == job_type)


@pytest.fixture
def cron_scheduler(redis_conn):
    return ScheduleTimer(queue_name=timer.SCHEDULES_QUEUE, connection=redis_conn, interval=1)


# --- cron strings -------------------------------------------------------------------------------

@pytest.mark.parametrize("expression,after,tz,expected", [
    ("*/5 * * * *", T0, "UTC", datetime(2026, 3, 10, 12, 5)),
    ("0 */6 * * *", T0, "UTC", datetime(2026, 3, 10, 18, 0)),
    ("0 0 * * *", T0, "UTC", datetime(2026, 3, 11, 0, 0)),
    ("0 0 * * *", T0, "America/New_York", datetime(2026, 3, 11, 4, 0)),   # EDT since 8 March: UTC-4
    ("0 0 * * *", datetime(2026, 1, 10), "America/New_York", datetime(2026, 1, 10, 5, 0)),  # EST: UTC-5
    ("30 3 * * *", T0, "Europe/Berlin", datetime(2026, 3, 11, 2, 30)),
    ("*/30 * * * *", datetime(2026, 3, 10, 12, 30), "UTC", datetime(2026, 3, 10, 13, 0)),  # strictly after
])
def test_next_fire_time_honours_the_time_zone(expression, after, tz, expected):
    assert next_fire_time(expression, after, tz) == expected


@pytest.mark.parametrize("bad,needle", [
    ("", "non-empty"), (None, "non-empty"), ("* * * *", "5 fields"), ("* * * * * *", "5 fields"),
    ("61 * * * *", "invalid cron"), ("*/0 * * * *", "invalid cron"), ("a b c d e", "invalid cron"),
])
def test_invalid_cron_strings_are_refused_with_a_reason(bad, needle):
    with pytest.raises(InvalidSchedule, match=needle):
        validate_cron(bad)


@pytest.mark.parametrize("expression,label", [
    ("*/5 * * * *", "Every 5 minutes"), ("* * * * *", "Every minute"), ("0 * * * *", "Every hour"),
    ("0 */6 * * *", "Every 6 hours"), ("0 0 * * *", "Daily at 00:00 (UTC)"),
    ("0 9 * * 1", "Weekly on Monday at 09:00 (UTC)"), ("0 0 1 * *", "Monthly on day 1 at 00:00 (UTC)"),
    ("5 4 * 2 *", "Cron 5 4 * 2 * (UTC)"),
])
def test_schedules_have_human_labels(expression, label):
    assert describe(expression) == label


# --- default rows -------------------------------------------------------------------------------

def test_default_schedules_are_created_once_and_never_overwrite_edits(settings):
    created = ensure_default_schedules(settings, now=T0)
    assert created == [name for name, *_ in DEFAULT_SCHEDULES]
    assert ScheduledJob.select().count() == 6
    # Plex is not configured: the two Plex schedules are created disabled
    assert not _row("scan_plex").enabled and not _row("plex_recently_added_check").enabled
    assert _row("cleanup_seeded_torrents").enabled
    assert _row("cleanup_seeded_torrents").next_run == datetime(2026, 3, 10, 12, 30)

    ScheduledJob.update(schedule="*/10 * * * *", enabled=False).where(
        ScheduledJob.type == "cleanup_seeded_torrents").execute()
    assert ensure_default_schedules(settings, now=T0) == []
    assert ScheduledJob.select().count() == 6
    edited = _row("cleanup_seeded_torrents")
    assert edited.schedule == "*/10 * * * *" and not edited.enabled


def test_plex_schedules_are_enabled_when_plex_is_configured(settings, use_settings):
    configured = use_settings(PLEX_URL="http://127.0.0.1:32400", PLEX_TOKEN="tok-123456", PLEX_LIBRARY_ID="3")
    ensure_default_schedules(configured, now=T0)
    assert _row("scan_plex").enabled and _row("scan_plex").next_run == datetime(2026, 3, 10, 18, 0)
    assert _row("plex_recently_added_check").enabled


def test_the_database_refuses_a_second_schedule_of_one_type(settings):
    import peewee

    ensure_default_schedules(settings, now=T0)
    with pytest.raises(peewee.IntegrityError):
        ScheduledJob.create(name="Again", type="cleanup_seeded_torrents", schedule="* * * * *")


# --- keeping rq-scheduler in step -----------------------------------------------------------------

def _entries(cron_scheduler):
    return {job.id: when for job, when in cron_scheduler.get_jobs(with_times=True)}


def test_sync_gives_each_enabled_schedule_one_stable_entry_and_follows_edits(settings, cron_scheduler, client, bearer):
    ensure_default_schedules(settings, now=T0)
    assert timer.sync_timer(cron_scheduler, now=T0) == {"added": 4, "moved": 0, "cancelled": 0}
    cleanup = _row("cleanup_seeded_torrents")
    entries = _entries(cron_scheduler)
    assert set(entries) == {f"schedule-{_row(t).id}" for t in
                            ("retry_missing_torrents", "retry_failed_imports", "cleanup_seeded_torrents",
                             "cleanup_job_history")}
    assert entries[f"schedule-{cleanup.id}"] == cleanup.next_run
    assert timer.sync_timer(cron_scheduler, now=T0) == {"added": 0, "moved": 0, "cancelled": 0}

    # an edit through the API moves the entry on the next sync (the scheduler syncs every 2 s)
    response = client.put(f"/api/admin/jobs/{cleanup.id}", json={"schedule": "0 * * * *"}, headers=bearer)
    assert response.status_code == 200
    assert timer.sync_timer(cron_scheduler)["moved"] == 1
    moved = _entries(cron_scheduler)[f"schedule-{cleanup.id}"]
    assert moved == _row("cleanup_seeded_torrents").next_run and moved.minute == 0

    client.put(f"/api/admin/jobs/{cleanup.id}", json={"enabled": False}, headers=bearer)
    assert timer.sync_timer(cron_scheduler)["cancelled"] == 1
    assert f"schedule-{cleanup.id}" not in _entries(cron_scheduler)

    ScheduledJob.delete().where(ScheduledJob.type == "retry_failed_imports").execute()
    assert timer.sync_timer(cron_scheduler)["cancelled"] == 1
    assert len(_entries(cron_scheduler)) == 2


# --- firing ticks -----------------------------------------------------------------------------------

def _schedule(settings, job_type="cleanup_job_history", cron="*/5 * * * *", next_run=None, created=T0):
    ensure_default_schedules(settings, now=created)
    ScheduledJob.update(schedule=cron, enabled=True, next_run=next_run).where(ScheduledJob.type == job_type).execute()
    return _row(job_type)


def test_a_tick_runs_once_through_add_job_and_updates_the_schedule(settings, redis_conn):
    row = _schedule(settings, next_run=datetime(2026, 3, 10, 12, 5))
    due = row.next_run.isoformat()
    now = datetime(2026, 3, 10, 12, 5, 1)
    outcome = timer.fire_schedule(str(row.id), due, now=now)
    again = timer.fire_schedule(str(row.id), due, now=now)  # the same tick again (restart, 2nd scheduler)
    assert "jobId" in outcome and "already handled" in again["skipped"]

    jobs = list(Job.select().where(Job.scheduled_job_id == row.id))
    assert len(jobs) == 1 and jobs[0].type == "cleanup_job_history" and str(jobs[0].id) == outcome["jobId"]
    assert jobs[0].payload["scheduledJobId"] == str(row.id)
    row = _row("cleanup_job_history")
    assert row.last_run == now and str(row.last_run_job_id) == outcome["jobId"]
    assert row.next_run == datetime(2026, 3, 10, 12, 10)
    event = JobEvent.get(JobEvent.job == jobs[0].id)
    assert event.context == "Scheduler" and "Started by schedule 'Job History Cleanup'" in event.message

    drain(queue_names_for_group("maintenance"))
    assert Job.get_by_id(outcome["jobId"]).status == "completed"


def test_a_tick_whose_previous_run_is_still_waiting_is_skipped(settings, redis_conn):
    row = _schedule(settings, next_run=datetime(2026, 3, 10, 12, 5))
    first = timer.fire_schedule(str(row.id), row.next_run.isoformat(), now=datetime(2026, 3, 10, 12, 5))
    row = _row("cleanup_job_history")
    second = timer.fire_schedule(str(row.id), row.next_run.isoformat(), now=datetime(2026, 3, 10, 12, 10))
    assert "still pending" in second["skipped"]
    assert Job.select().where(Job.scheduled_job_id == row.id).count() == 1
    warning = JobEvent.get((JobEvent.job == first["jobId"]) & (JobEvent.level == "warn"))
    assert "skipped" in warning.message
    assert _row("cleanup_job_history").next_run == datetime(2026, 3, 10, 12, 15)  # not piled up


def test_after_downtime_an_overdue_schedule_runs_once_not_once_per_missed_tick(settings, redis_conn, cron_scheduler):
    three_hours_ago = datetime.utcnow().replace(microsecond=0) - timedelta(hours=3)
    row = _schedule(settings, next_run=three_hours_ago)  # 36 ticks of */5 missed
    from app.schedules.process import SchedulerProcess

    process = SchedulerProcess()
    process.tick()
    process.ticks = 0
    process.tick()
    runs = list(Job.select().where(Job.scheduled_job_id == row.id))
    assert len(runs) == 1
    assert _row("cleanup_job_history").next_run > datetime.utcnow()


@pytest.mark.slow
def test_restarts_and_two_scheduler_processes_give_one_run_per_tick(settings_env, redis_conn, tmp_path):
    settings, env = settings_env
    row = _schedule(settings, next_run=datetime.utcnow().replace(microsecond=0) - timedelta(seconds=5))
    first = start_process(["scheduler.py"], env, tmp_path / "scheduler-1.log")
    second = start_process(["scheduler.py"], env, tmp_path / "scheduler-2.log")
    try:
        wait_for(lambda: Job.select().where(Job.scheduled_job_id == row.id).count() >= 1, 30, message="a run")
        time.sleep(3)
        stop_process(first)  # restart: a new process starts while the other keeps going
        first = start_process(["scheduler.py"], env, tmp_path / "scheduler-3.log")
        time.sleep(5)
    finally:
        stop_process(first)
        stop_process(second)
    assert Job.select().where(Job.scheduled_job_id == row.id).count() == 1
    assert _row("cleanup_job_history").next_run > datetime.utcnow() - timedelta(seconds=1)


@pytest.mark.slow
def test_sigterm_stops_the_scheduler_process_with_exit_code_0_after_it_fired_a_schedule(
        settings_env, redis_conn, tmp_path):
    import signal

    settings, env = settings_env
    row = _schedule(settings, next_run=datetime.utcnow().replace(microsecond=0) - timedelta(seconds=5))
    log_path = tmp_path / "scheduler.log"
    process = start_process(["scheduler.py"], {**env, "LOG_LEVEL": "info"}, log_path)
    try:
        # a fired schedule runs through RQ's worker in this process (which installs signal handlers of its own)
        wait_for(lambda: Job.select().where(Job.scheduled_job_id == row.id).count() >= 1, 30, message="a run")
        time.sleep(1.5)  # a tick or two later: asleep between ticks, or in one
        process.send_signal(signal.SIGTERM)
        code = process.wait(15)
    finally:
        stop_process(process)
    output = log_path.read_text()
    assert code == 0, output
    assert "scheduler stopped" in output and "Traceback" not in output, output


# --- Trigger Now and the API ----------------------------------------------------------------------

def test_trigger_now_returns_a_pollable_job_id_that_reaches_completed(settings, client, redis_conn, bearer):
    ensure_default_schedules(settings, now=T0)
    row = _row("cleanup_job_history")
    response = client.post(f"/api/admin/jobs/{row.id}/trigger", headers=bearer)
    body = response.get_json()
    assert response.status_code == 200 and body["success"] is True and body["jobId"] in body["message"]
    status = client.get(f"/api/admin/job-status/{body['jobId']}", headers=bearer).get_json()
    assert status["job"]["status"] == "pending"
    drain(queue_names_for_group("maintenance"))
    status = client.get(f"/api/admin/job-status/{body['jobId']}", headers=bearer).get_json()
    assert status["job"]["status"] == "completed"
    row = _row("cleanup_job_history")
    assert str(row.last_run_job_id) == body["jobId"] and row.last_run is not None


def test_library_scan_refuses_to_trigger_without_plex(settings, client, redis_conn, bearer):
    ensure_default_schedules(settings, now=T0)
    response = client.post(f"/api/admin/jobs/{_row('scan_plex').id}/trigger", headers=bearer)
    assert response.status_code == 400
    assert "PLEX_URL, PLEX_TOKEN, PLEX_LIBRARY_ID" in response.get_json()["error"]
    assert Job.select().count() == 0


def test_library_scan_trigger_passes_the_library_id(settings, use_settings, redis_conn):
    use_settings(PLEX_URL="http://127.0.0.1:32400", PLEX_TOKEN="tok-123456", PLEX_LIBRARY_ID="7")
    ensure_default_schedules(settings, now=T0)
    job = Job.get_by_id(trigger_job_now("Library Scan"))
    assert job.type == "scan_plex" and job.payload["libraryId"] == "7"


def test_the_jobs_api_lists_schedules_with_their_last_run(settings, client, redis_conn, bearer):
    ensure_default_schedules(settings, now=T0)
    job_id = trigger_job_now("cleanup_job_history")
    drain(queue_names_for_group("maintenance"))
    body = client.get("/api/admin/jobs", headers=bearer).get_json()
    by_type = {s["type"]: s for s in body["jobs"]}
    assert list(s["name"] for s in body["jobs"]) == sorted(s["name"] for s in body["jobs"])
    history = by_type["cleanup_job_history"]
    assert history["lastRunJobId"] == job_id and history["lastRunStatus"] == "completed"
    run = Job.get_by_id(job_id)
    assert history["lastRunDuration"] == round((run.completed_at - run.started_at).total_seconds(), 3)
    assert history["scheduleHuman"] == "Daily at 03:30 (UTC)"
    assert history["nextRun"].endswith("Z") and history["enabled"] is True
    assert by_type["scan_plex"]["enabled"] is False and by_type["scan_plex"]["lastRun"] is None


def test_schedule_edits_are_validated_and_bad_ones_change_nothing(settings, client, bearer):
    ensure_default_schedules(settings, now=T0)
    row = _row("retry_failed_imports")
    url = f"/api/admin/jobs/{row.id}"
    for body, needle in (({"schedule": "every day"}, "schedule: cron string must have 5 fields"),
                         ({"schedule": "61 * * * *"}, "invalid cron"),
                         ({"enabled": "yes"}, "enabled must be true or false"),
                         ({"name": ""}, "name must be"), ({"payload": {}}, "unknown field(s): payload"),
                         (["x"], "body must be a JSON object")):
        response = client.put(url, json=body, headers=bearer)
        assert response.status_code == 400 and needle in response.get_json()["error"], body
    assert client.put(url, data="{nope", headers={**bearer, "Content-Type": "application/json"}).status_code == 400
    unchanged = _row("retry_failed_imports")
    assert (unchanged.schedule, unchanged.enabled, unchanged.name) == (row.schedule, row.enabled, row.name)

    response = client.put(url, json={"name": "Imports", "schedule": "*/15  * * * *", "enabled": True},
                          headers=bearer)
    assert response.status_code == 200 and response.get_json()["job"]["schedule"] == "*/15 * * * *"
    missing = client.put("/api/admin/jobs/00000000-0000-0000-0000-000000000000", json={}, headers=bearer)
    assert missing.status_code == 404
    assert client.post("/api/admin/jobs/nope/trigger", headers=bearer).status_code == 404


def test_the_jobs_api_needs_an_admin_and_csrf_for_sessions(settings, client, admin_client):
    ensure_default_schedules(settings, now=T0)
    row = _row("retry_failed_imports")
    assert client.get("/api/admin/jobs").status_code == 401
    assert client.post(f"/api/admin/jobs/{row.id}/trigger").status_code == 401
    assert client.put(f"/api/admin/jobs/{row.id}", json={"enabled": False}).status_code == 401
    assert admin_client.get("/api/admin/jobs").status_code == 200
    # a logged-in browser session without the CSRF token is refused
    assert admin_client.put(f"/api/admin/jobs/{row.id}", json={"enabled": False}).status_code == 400
    assert _row("retry_failed_imports").enabled


def test_cli_trigger_prints_the_job_id(settings, flask_app, redis_conn):
    ensure_default_schedules(settings, now=T0)
    result = flask_app.test_cli_runner().invoke(args=["trigger", "Job History Cleanup"])
    assert result.exit_code == 0, result.output
    assert Job.get_by_id(result.output.strip()).type == "cleanup_job_history"
    missing = flask_app.test_cli_runner().invoke(args=["trigger", "No Such Schedule"])
    assert missing.exit_code != 0 and "no scheduled job" in missing.output


# --- late detection ---------------------------------------------------------------------------------

def test_a_schedule_is_late_when_the_scheduler_is_down_or_its_workers_are_missing(settings, redis_conn):
    now = datetime(2026, 3, 10, 13, 0)
    row = _schedule(settings, next_run=datetime(2026, 3, 10, 12, 55))
    assert "scheduler process is not running" in late_reason(row, None, {}, False, now)
    assert late_reason(row, None, {}, True, datetime(2026, 3, 10, 12, 55, 30)) is None  # within the grace

    on_time = _schedule(settings, next_run=datetime(2026, 3, 10, 13, 5))
    queued = Job.create(type="cleanup_job_history", status="pending", created_at=datetime(2026, 3, 10, 12, 50))
    reason = late_reason(on_time, queued, {}, True, now)
    assert "no live workers for the 'maintenance' queue" in reason
    assert "workers are busy" in late_reason(on_time, queued, {"maintenance": 1}, True, now)
    queued.status = "completed"
    assert late_reason(on_time, queued, {}, True, now) is None


def test_healthz_and_the_api_report_late_schedules(settings, client, redis_conn, bearer):
    _schedule(settings, next_run=datetime.utcnow() - timedelta(minutes=10), created=datetime.utcnow())
    health = client.get("/healthz").get_json()
    assert health["scheduler"] == "not running" and health["status"] == "degraded"
    assert [s["name"] for s in health["lateSchedules"]] == ["Job History Cleanup"]
    listed = {s["type"]: s for s in client.get("/api/admin/jobs", headers=bearer).get_json()["jobs"]}
    assert listed["cleanup_job_history"]["late"] is True
    assert re.search(r"due \d+ s ago", listed["cleanup_job_history"]["lateReason"])

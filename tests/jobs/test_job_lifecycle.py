"""Callbacks persist status; retries, back-off, permanent errors, count retention, history cleanup."""
from __future__ import annotations

from datetime import timedelta

import pytest
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from app.jobs import retention
from app.jobs.queues import queue_names_for_group, queue_names_for_type
from app.jobs.service import add_job
from app.models import Job, JobEvent, utcnow

import jobtypes  # noqa: F401
from helpers import drain

TESTING = queue_names_for_group("testing")
MAINTENANCE = queue_names_for_group("maintenance")


def _row(job_id: str) -> Job:
    return Job.get_by_id(job_id)


def test_a_successful_job_is_completed_with_result_times_and_events(settings, redis_conn):
    job_id = add_job("noop", {})
    assert _row(job_id).status == "pending"
    drain(MAINTENANCE)
    row = _row(job_id)
    assert row.status == "completed"
    assert row.result == {"success": True}
    assert row.attempts == 1
    assert row.created_at <= row.started_at <= row.completed_at
    assert row.error_message is None
    events = [(e.level, e.context, e.message) for e in JobEvent.select().where(JobEvent.job == job_id)
              .order_by(JobEvent.created_at)]
    assert events == [("info", "Noop", "Started"), ("info", "Noop", "Finished")]


@pytest.mark.slow
def test_a_failing_job_runs_three_times_with_2s_then_4s_back_off_then_fails(settings, redis_conn):
    job_id = add_job("test_fail", {"tag": "flaky"})
    statuses = []

    def settled():
        row = _row(job_id)
        statuses.append((row.status, row.attempts))
        return row.status == "failed"

    drain(TESTING, until=settled, timeout=30)
    row = _row(job_id)
    assert row.attempts == 3 and row.max_attempts == 3
    assert row.error_message == "RuntimeError: boom for flaky"
    assert "raise RuntimeError" in row.stack_trace
    assert row.completed_at is not None
    # between attempts the row says it is waiting, never failed before the last attempt
    assert ("delayed", 1) in statuses and ("delayed", 2) in statuses
    assert all(status != "failed" for status, attempts in statuses if attempts < 3)
    runs = [float(x) for x in redis_conn.lrange(f"test:runs:{job_id}", 0, -1)]
    gaps = [later - earlier for earlier, later in zip(runs, runs[1:], strict=False)]
    assert len(runs) == 3
    # RQ schedules retries at whole-second resolution, so a "2 s" wait lasts 1-2 s (+ poll delay)
    assert 1.0 <= gaps[0] <= 3.2, gaps
    assert 3.0 <= gaps[1] <= 5.2, gaps
    assert gaps[1] - gaps[0] >= 1.0, gaps
    levels = [e.level for e in JobEvent.select().where(JobEvent.job == job_id).order_by(JobEvent.created_at)]
    assert levels == ["warn", "warn", "error"]
    assert FailedJobRegistry("test_fail.medium", connection=redis_conn).get_job_ids() == [f"job-{job_id}"]


def test_raising_max_attempts_keeps_doubling_the_wait():
    from app.jobs.service import retry_policy

    policy = retry_policy(5, 2)
    assert policy.max == 4 and policy.intervals == [2, 4, 8, 16]
    assert retry_policy(1, 2) is None


def test_a_permanent_error_skips_the_remaining_attempts(settings, redis_conn):
    job_id = add_job("test_permanent", {})
    drain(TESTING, until=lambda: _row(job_id).status == "failed", timeout=10)
    row = _row(job_id)
    assert row.attempts == 1
    assert "PROWLARR_API_KEY is rejected" in row.error_message
    assert redis_conn.llen(f"test:runs:{job_id}") == 1
    event = JobEvent.get(JobEvent.job == job_id)
    assert event.level == "error" and "permanent error, not retried" in event.message


def test_a_cancelled_job_does_not_run_when_dequeued(settings, redis_conn):
    from app.jobs import state

    job_id = add_job("test_record", {"tag": "cancelled"})
    assert state.mark_cancelled(job_id, "cancelled by test")
    drain(TESTING)
    assert redis_conn.llen("test:order") == 0
    row = _row(job_id)
    assert row.status == "cancelled" and row.attempts == 0


def test_late_callbacks_never_move_a_job_backwards(settings, redis_conn):
    from app.jobs import state

    job_id = add_job("noop", {})
    drain(MAINTENANCE)
    assert not state.mark_attempt_failed(job_id, error="late", trace=None, final=True, retry_in=None)
    assert not state.mark_attempt_failed(job_id, error="late", trace=None, final=True, retry_in=None,
                                         abandoned_before=utcnow())
    assert not state.mark_active(job_id, "another-token", 30)
    assert not state.mark_cancelled(job_id, "too late")
    assert _row(job_id).status == "completed"


def test_a_stale_run_token_writes_nothing(settings, redis_conn):
    """Fencing at the state level: once a successor run holds the row, the first run's writes are refused."""
    from app.jobs import state

    job_id = add_job("noop", {})
    assert state.mark_active(job_id, "first", 30)
    assert not state.mark_active(job_id, "second", 30)  # a live lease: nobody else may start it
    # the sweep declares the first run dead (its lease is "expired" as of a moment in the future)
    assert state.mark_attempt_failed(job_id, error="lost", trace=None, final=False, retry_in=1,
                                     abandoned_before=utcnow() + timedelta(seconds=1))
    assert _row(job_id).status == "stuck" and _row(job_id).run_token is None
    assert state.mark_active(job_id, "second", 30)
    assert not state.renew_lease(job_id, "first")
    assert not state.mark_completed(job_id, {"by": "first"}, "first")
    assert not state.mark_attempt_failed(job_id, error="first", trace=None, final=True, retry_in=None, token="first")
    assert not state.mark_waiting_for_poll(job_id, 5, {}, "first")
    assert state.renew_lease(job_id, "second")
    assert state.mark_completed(job_id, {"by": "second"}, "second")
    row = _row(job_id)
    assert row.status == "completed" and row.result == {"by": "second"} and row.attempts == 2


def test_redis_keeps_only_the_newest_completed_and_failed_jobs_per_type(settings, redis_conn, use_settings):
    use_settings(REDIS_KEEP_COMPLETED=5, REDIS_KEEP_FAILED=2, JOB_MAX_ATTEMPTS=1)
    done = [add_job("test_record", {"tag": str(i)}, priority=("high" if i % 2 else "low")) for i in range(12)]
    failed = [add_job("test_fail", {}) for _ in range(4)]
    drain(TESTING)

    finished_ids = set()
    for name in queue_names_for_type("test_record"):
        finished_ids.update(FinishedJobRegistry(name, connection=redis_conn).get_job_ids())
    completion_order = [int(tag) for tag in redis_conn.lrange("test:order", 0, -1)]
    newest_five = {f"job-{done[i]}" for i in completion_order[-5:]}
    oldest = f"job-{done[completion_order[0]]}"
    assert len(finished_ids) == 5
    assert finished_ids == newest_five
    assert not redis_conn.exists(f"rq:job:{oldest}")
    assert all(redis_conn.exists(f"rq:job:{rq_id}") for rq_id in newest_five)
    failed_ids = FailedJobRegistry("test_fail.medium", connection=redis_conn).get_job_ids()
    assert sorted(failed_ids) == sorted(f"job-{job_id}" for job_id in failed[-2:])
    # the database keeps the whole history
    assert Job.select().where(Job.status == "completed").count() == 12
    assert Job.select().where(Job.status == "failed").count() == 4


def test_history_cleanup_removes_old_finished_jobs_and_their_events(settings, redis_conn):
    old = utcnow() - timedelta(days=31)
    old_done = Job.create(type="noop", status="completed", created_at=old)
    old_active = Job.create(type="noop", status="active", created_at=old)
    recent = Job.create(type="noop", status="failed")
    for job in (old_done, old_active, recent):
        JobEvent.create(job=job, level="info", context="T", message="m")

    job_id = add_job("cleanup_job_history", {})
    drain(MAINTENANCE)

    assert _row(job_id).status == "completed"
    assert _row(job_id).result["jobsDeleted"] == 1 and _row(job_id).result["eventsDeleted"] == 1
    remaining = {str(j.id) for j in Job.select()}
    assert str(old_done.id) not in remaining
    assert {str(old_active.id), str(recent.id), job_id} <= remaining
    assert JobEvent.select().where(JobEvent.job == old_done.id).count() == 0
    assert retention.cleanup_job_history(30)["jobsDeleted"] == 0

"""Real worker processes: kill -9 mid-job → stuck → retried; a killed fork work-horse; SIGTERM.

These start `python -m workers` pools and `scheduler.py` as subprocesses against the test Redis
and PostgreSQL, with the production timing settings (JOB_HEARTBEAT_TTL 30 s, sweep every 5 s).
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from app.jobs.service import add_job
from app.models import Job, JobEvent

import jobtypes  # noqa: F401
from helpers import start_process, stop_process, wait_for


def _status(job_id):
    return Job.get_by_id(job_id)


def _sleeping_pid(redis_conn, job_id, timeout=30):
    wait_for(lambda: redis_conn.get(f"test:sleeping:{job_id}"), timeout, message="job to start sleeping")
    return int(redis_conn.get(f"test:pid:{job_id}"))


def _start_pool(env, tmp_path, name, **extra):
    return start_process(["tests/run_pool.py", "testing", "--size", "1"], {**env, **extra}, tmp_path / f"{name}.log")


def _start_scheduler(env, tmp_path):
    return start_process(["-c", "import jobtypes, runpy; runpy.run_path('scheduler.py', run_name='__main__')"],
                         env, tmp_path / "scheduler.log")


def _watch_until_completed(job_id, timeout):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = _status(job_id)
        if not seen or seen[-1] != row.status:
            seen.append(row.status)
        if row.status in ("completed", "failed"):
            return seen, row
        time.sleep(0.1)
    raise AssertionError(f"job did not finish within {timeout} s; statuses seen: {seen}")


@pytest.mark.slow
def test_kill_9_of_a_worker_mid_job_makes_it_stuck_then_retried(settings_env, redis_conn, tmp_path):
    settings, env = settings_env
    pool = _start_pool(env, tmp_path, "pool")
    scheduler = _start_scheduler(env, tmp_path)
    try:
        job_id = add_job("test_sleep", {"seconds": 120})
        worker_pid = _sleeping_pid(redis_conn, job_id)
        killed_at = time.monotonic()
        os.kill(worker_pid, signal.SIGKILL)

        wait_for(lambda: _status(job_id).status == "stuck", 120, interval=0.2, message="stuck")
        stuck_after = time.monotonic() - killed_at
        seen, row = _watch_until_completed(job_id, 120)
        done_after = time.monotonic() - killed_at
    finally:
        stop_process(scheduler)
        stop_process(pool)
    print(f"kill -9 → stuck after {stuck_after:.1f} s, completed after {done_after:.1f} s")
    assert stuck_after < 120 and done_after < 120
    assert row.attempts == 2 and row.result == {"run": 2}
    warning = JobEvent.get((JobEvent.job == job_id) & (JobEvent.level == "warn"))
    assert "Worker process died while running the job" in warning.message


@pytest.mark.slow
def test_a_killed_fork_work_horse_is_recorded_and_retried(settings_env, redis_conn, tmp_path):
    settings, env = settings_env
    pool = _start_pool(env, tmp_path, "fork-pool", WORKER_CLASS="fork")
    scheduler = _start_scheduler(env, tmp_path)  # it alone moves the retry from RQ's scheduled registry
    try:
        job_id = add_job("test_sleep", {"seconds": 120})
        horse_pid = _sleeping_pid(redis_conn, job_id)
        os.kill(horse_pid, signal.SIGKILL)
        seen, row = _watch_until_completed(job_id, 60)
    finally:
        stop_process(scheduler)
        stop_process(pool)
    assert row.attempts == 2 and row.result == {"run": 2}
    warning = JobEvent.get((JobEvent.job == job_id) & (JobEvent.level == "warn"))
    assert "Work-horse process terminated unexpectedly" in warning.message


@pytest.mark.slow
def test_sigterm_lets_the_running_job_finish_and_loses_no_queued_job(settings_env, redis_conn, tmp_path):
    settings, env = settings_env
    pool = _start_pool(env, tmp_path, "pool-1")
    running = add_job("test_sleep", {"seconds": 3})
    _sleeping_pid(redis_conn, running)
    queued = [add_job("test_record", {"tag": str(i)}, priority="low") for i in range(20)]
    pool.send_signal(signal.SIGTERM)
    try:
        assert pool.wait(30) == 0
    finally:
        stop_process(pool)
    row = _status(running)
    assert row.status == "completed" and row.attempts == 1
    # whatever was not started is still queued, and a new pool runs it
    assert all(_status(job_id).status in ("pending", "completed") for job_id in queued)
    pool = _start_pool(env, tmp_path, "pool-2")
    try:
        wait_for(lambda: all(_status(job_id).status == "completed" for job_id in queued), 60,
                 message="queued jobs after restart")
    finally:
        stop_process(pool)
    assert sorted(int(x) for x in redis_conn.lrange("test:order", 0, -1)) == list(range(20))


@pytest.mark.slow
def test_stopping_a_running_job_on_a_fork_worker_cancels_it(settings_env, redis_conn, tmp_path):
    from rq.command import send_stop_job_command

    settings, env = settings_env
    pool = _start_pool(env, tmp_path, "fork-stop", WORKER_CLASS="fork")
    try:
        job_id = add_job("test_sleep", {"seconds": 120})
        _sleeping_pid(redis_conn, job_id)
        send_stop_job_command(redis_conn, f"job-{job_id}")
        wait_for(lambda: _status(job_id).status == "cancelled", 30, message="cancelled")
        time.sleep(3)  # no retry follows a stop
    finally:
        stop_process(pool)
    row = _status(job_id)
    assert row.status == "cancelled" and row.attempts == 1
    assert "Stopped by an admin" in row.error_message


@pytest.mark.slow
def test_with_aof_a_redis_restart_loses_no_queued_job(settings_env, tmp_path, use_settings):
    import subprocess

    from app.jobs.queues import queue_names_for_group

    from helpers import drain

    port = 6391
    data = tmp_path / "redis"
    data.mkdir()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
               "--appendfsync", "everysec", "--dir", str(data), "--daemonize", "no"]

    def start():
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        import redis

        wait_for(lambda: _ping(redis.Redis(port=port)), 10, message="redis up")
        return server

    server = start()
    try:
        use_settings(REDIS_URL=f"redis://127.0.0.1:{port}/0")
        jobs = [add_job("test_record", {"tag": str(i)}) for i in range(5)]
        server.terminate()  # SIGTERM: a normal Redis restart
        server.wait(10)
        server = start()
        drain(queue_names_for_group("testing"))
        assert all(_status(job_id).status == "completed" for job_id in jobs)
    finally:
        server.terminate()
        server.wait(10)


def _ping(connection):
    try:
        return connection.ping()
    except Exception:
        return False


def test_jobs_that_redis_lost_are_enqueued_again(settings, redis_conn):
    from datetime import timedelta

    from app.jobs.queues import queue_names_for_group
    from app.jobs.recovery import requeue_lost_jobs
    from app.models import utcnow

    from helpers import drain

    jobs = [add_job("test_record", {"tag": str(i)}) for i in range(3)]
    redis_conn.flushdb()  # Redis restarted without persistence
    assert requeue_lost_jobs(redis_conn) == []  # within the grace period nothing is touched
    requeued = requeue_lost_jobs(redis_conn, now=utcnow() + timedelta(minutes=2))
    assert sorted(requeued) == sorted(jobs)
    drain(queue_names_for_group("testing"))
    assert all(_status(job_id).status == "completed" for job_id in jobs)
    assert requeue_lost_jobs(redis_conn, now=utcnow() + timedelta(minutes=2)) == []
    event = JobEvent.get((JobEvent.job == jobs[0]) & (JobEvent.level == "warn"))
    assert "missing from Redis" in event.message


def test_a_job_handed_to_a_worker_cut_off_from_redis_is_enqueued_again(settings, redis_conn):
    """A worker blocked in its pop when its host is cut off still gets the next job from Redis, which writes
    it to a connection that no longer arrives (tests/faults/test_hosts.py): the job is `queued` in RQ but
    in no queue, and nothing would run it until that worker hears from Redis again."""
    from datetime import timedelta

    from app.jobs.queues import queue_names_for_group
    from app.jobs.recovery import requeue_lost_jobs
    from app.models import utcnow

    from helpers import drain

    job_id = add_job("test_record", {"tag": "in flight"})
    waiting = add_job("test_record", {"tag": "still queued"})
    rq_id = Job.get_by_id(job_id).rq_job_id
    origin = redis_conn.hget(f"rq:job:{rq_id}", "origin").decode()
    assert redis_conn.lrem(f"rq:queue:{origin}", 0, rq_id) == 1   # popped by the cut-off worker
    later = utcnow() + timedelta(minutes=2)
    assert requeue_lost_jobs(redis_conn) == []   # within the grace period nothing is touched
    assert requeue_lost_jobs(redis_conn, now=later) == [job_id]   # the one still in its queue is left alone
    drain(queue_names_for_group("testing"))
    assert _status(job_id).status == "completed" and _status(waiting).status == "completed"
    assert requeue_lost_jobs(redis_conn, now=later) == []
    event = JobEvent.get((JobEvent.job == job_id) & (JobEvent.level == "warn"))
    assert "never started it" in event.message


@pytest.mark.slow
def test_a_group_runs_at_most_its_size_of_jobs_at_once(settings_env, redis_conn, tmp_path):
    """A pool of size 2 for the testing group: five 1.5 s jobs run two at a time, never three and never one
    by one (the overlap of their rows' started_at..completed_at intervals)."""
    settings, env = settings_env
    pool = start_process(["tests/run_pool.py", "testing", "--size", "2"], env, tmp_path / "pool.log")
    try:
        ids = [add_job("test_sleep", {"seconds": 1.5}) for _ in range(5)]
        wait_for(lambda: all(_status(job_id).status == "completed" for job_id in ids), 60,
                 message="five jobs completed")
    finally:
        stop_process(pool)
    rows = [_status(job_id) for job_id in ids]
    edges = sorted([(row.started_at, 1) for row in rows] + [(row.completed_at, -1) for row in rows])
    running = peak = 0
    for _, step in edges:  # an end at the same instant as a start sorts first
        running += step
        peak = max(peak, running)
    assert peak == 2, [(row.started_at, row.completed_at) for row in rows]

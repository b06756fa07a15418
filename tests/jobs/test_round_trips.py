"""What a run costs in round trips: the full path (jobs row, fencing, events, callbacks, retention) must not
cost more Redis round trips per no-op job than bare RQ's SimpleWorker, and every write of a jobs row touches
only the indexes the queries need (bench/throughput.py measures the time)."""
from __future__ import annotations

import time

import pytest
import redis.connection
from rq import Queue, SimpleWorker

from app.db import database
from app.jobs.queues import get_redis, queue_names_for_group
from app.jobs.service import add_job
from app.models import Job
from workers.worker import JobWorker

import jobtypes  # noqa: F401

JOBS = 30


class _RoundTrips:
    """Counts what goes over the wire: a command, or a whole pipeline, is one send."""

    def __init__(self, monkeypatch):
        self.count = 0
        send = redis.connection.Connection.send_packed_command

        def counting(connection, *args, **kwargs):
            self.count += 1
            return send(connection, *args, **kwargs)

        monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)


def _bare_noop():
    return None


def _trips_per_job(trips: _RoundTrips, enqueue_one, work) -> float:
    """Round trips one more job adds to a burst (a worker's start, registry cleaning and stop cancel out)."""
    counts = []
    for jobs in (JOBS, 2 * JOBS):
        for _ in range(jobs):
            enqueue_one()
        trips.count = 0
        work()
        counts.append(trips.count)
    return (counts[1] - counts[0]) / JOBS


@pytest.mark.slow
def test_a_no_op_job_costs_fewer_redis_round_trips_than_bare_rq(settings, redis_conn, monkeypatch):
    trips = _RoundTrips(monkeypatch)
    bare = Queue("bare", connection=get_redis())
    bare_per_job = _trips_per_job(trips, lambda: bare.enqueue(_bare_noop),
                                  lambda: SimpleWorker(["bare"], connection=get_redis()).work(burst=True))
    full_per_job = _trips_per_job(
        trips, lambda: add_job("noop", {}),
        lambda: JobWorker(queue_names_for_group("maintenance"), connection=get_redis()).work(burst=True))

    assert Job.select().where(Job.status == "completed").count() == 3 * JOBS
    # RQ's bare worker beats its key three times per job outside a pipeline (two round trips each), checks
    # for suspension before every job and writes the job's last heartbeat on its own; JobWorker drops
    # those (18 -> 12 here), which pays for the retention script and leaves a margin.
    assert full_per_job <= bare_per_job - 4, (full_per_job, bare_per_job)


def test_the_worker_key_stays_alive_while_beats_are_coalesced(settings, redis_conn):
    worker = JobWorker(queue_names_for_group("maintenance"), connection=get_redis())
    worker.register_birth()
    worker.heartbeat()
    first = redis_conn.ttl(worker.key)
    worker.heartbeat()  # within a second of the last: dropped
    assert redis_conn.ttl(worker.key) <= first
    worker.last_heartbeat = worker.last_heartbeat.replace(year=2000)
    redis_conn.expire(worker.key, 5)
    worker.heartbeat()  # due: sent
    assert redis_conn.ttl(worker.key) > 5
    worker.register_death()


def test_a_suspended_worker_still_runs_nothing(settings, redis_conn):
    from rq.suspension import resume, suspend

    job_id = add_job("noop", {})
    suspend(redis_conn)
    try:
        JobWorker(queue_names_for_group("maintenance"), connection=get_redis()).work(burst=True)
        assert Job.get_by_id(job_id).status == "pending"
    finally:
        resume(redis_conn)
    JobWorker(queue_names_for_group("maintenance"), connection=get_redis()).work(burst=True)
    assert Job.get_by_id(job_id).status == "completed"


def test_a_finished_rq_job_still_carries_its_last_heartbeat(settings, redis_conn):
    from rq.job import Job as RQJob

    job_id = add_job("noop", {})
    JobWorker(queue_names_for_group("maintenance"), connection=get_redis()).work(burst=True)
    rq_job = RQJob.fetch(Job.get_by_id(job_id).rq_job_id, connection=get_redis())
    assert rq_job.get_status() == "finished"
    assert rq_job.last_heartbeat is not None and rq_job.ended_at is not None
    assert abs((rq_job.last_heartbeat - rq_job.ended_at).total_seconds()) < 1


def _job_indexes() -> dict[str, str]:
    rows = database.obj.execute_sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs'")
    return {name: definition for name, definition in rows.fetchall()}


def test_a_jobs_row_write_touches_only_the_indexes_queries_need(settings):
    indexes = _job_indexes()
    # prefixes of the composite indexes are gone
    assert "jobs_type" not in indexes and "jobs_status" not in indexes
    assert set(indexes) == {"jobs_pkey", "jobs_rq_job_id", "jobs_created_at", "jobs_type_status_created_at",
                            "jobs_status_heartbeat", "jobs_request_id", "jobs_scheduled_job_id", "jobs_error_trgm"}
    for name in ("jobs_request_id", "jobs_scheduled_job_id", "jobs_error_trgm"):
        assert "IS NOT NULL" in indexes[name], indexes[name]


def test_lookups_by_the_partial_indexes_still_use_them(settings):
    db = database.obj
    with db.atomic():
        db.execute_sql("SET LOCAL enable_seqscan = off")
        plans = {
            "jobs_request_id": "SELECT id FROM jobs WHERE request_id = '00000000-0000-0000-0000-000000000001'",
            "jobs_scheduled_job_id": "SELECT id FROM jobs WHERE scheduled_job_id = "
                                     "'00000000-0000-0000-0000-000000000001'",
            "jobs_error_trgm": "SELECT id FROM jobs WHERE lower(error_message) LIKE 'boom' || '%%'",
        }
        for index, query in plans.items():
            plan = " ".join(row[0] for row in db.execute_sql("EXPLAIN " + query).fetchall())
            assert index in plan, plan


@pytest.mark.slow
def test_an_idle_worker_keeps_its_key_when_the_job_lease_is_shorter_than_its_wait(use_settings, redis_conn):
    """The job's start beats the worker key with JOB_HEARTBEAT_TTL (5 s here); the worker then waits up to
    WORKER_TTL - 15 s (15 s) in its dequeue. A beat dropped after the job would let the key expire while the
    worker lives, and RQ's registry cleaning would forget the worker (health: missing workers)."""
    import multiprocessing

    use_settings(JOB_HEARTBEAT_TTL=5, WORKER_TTL=30)
    job_id = add_job("noop", {})

    def work():
        from app.db import bind_database

        from helpers import TEST_DATABASE_URL

        bind_database(TEST_DATABASE_URL)
        JobWorker(queue_names_for_group("maintenance"), connection=get_redis(), name="keyed-worker").work()

    process = multiprocessing.get_context("fork").Process(target=work, daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + 20
        while Job.get_by_id(job_id).status != "completed" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert Job.get_by_id(job_id).status == "completed"
        time.sleep(7)  # past the job's 5 s beat, inside the worker's 15 s dequeue wait
        assert redis_conn.exists("rq:worker:keyed-worker") == 1
        assert redis_conn.ttl("rq:worker:keyed-worker") > 5
    finally:
        process.terminate()
        process.join(10)


def test_the_dequeue_stays_one_round_trip_with_a_type_of_the_group_paused(settings, redis_conn, monkeypatch):
    """The paused set is read inside the dequeue's script: a pop costs one round trip, blocking or not, and the
    paused type's job is left where it is."""
    from app.jobs.dequeue import JobQueue
    from app.jobs.pausing import pause

    pause("cleanup_job_history", "test", get_redis())
    keys = [f"rq:queue:{name}" for name in queue_names_for_group("maintenance")]
    paused_job = add_job("cleanup_job_history", {}, priority="high")  # first in the worker's order
    trips = _RoundTrips(monkeypatch)
    for timeout in (None, 5):
        job_id = add_job("noop", {})
        trips.count = 0
        key, value = JobQueue.lpop(keys, timeout, connection=get_redis())
        assert trips.count == 1, (timeout, trips.count)
        assert (key, value) == ("rq:queue:noop.low", f"job-{job_id}".encode())
    assert redis_conn.lrange("rq:queue:cleanup_job_history.high", 0, -1) == [f"job-{paused_job}".encode()]

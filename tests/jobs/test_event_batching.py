"""A run's info events are held back while the run is young and written with its completion in the
same round trip (two SQL statements per no-op job on PostgreSQL instead of four); a run that goes on
longer still shows its events within about a second; a run that lost its lease stores none."""
from __future__ import annotations

import logging
import threading
import time

import pytest

from app.jobs import fence
from app.jobs.held_events import HOLD_SECONDS
from app.jobs.logger import create_job_logger
from app.jobs.queues import get_redis, queue_names_for_group
from app.jobs.service import add_job
from app.models import Job, JobEvent
from workers.worker import JobWorker

import jobtypes  # noqa: F401
from helpers import drain


class _Statements(logging.Handler):
    def __init__(self):
        super().__init__()
        self.sql: list[str] = []

    def emit(self, record):
        self.sql.append(str(record.msg[0]) if isinstance(record.msg, tuple) else record.getMessage())


def test_a_no_op_job_costs_two_statements_and_keeps_its_events(settings, redis_conn):
    from app.jobs.pausing import load_mirror

    ids = [add_job("noop", {}) for _ in range(3)]
    load_mirror(get_redis())  # the paused types' mirror: read from the table once per Redis lifetime, not per job
    handler, peewee_log = _Statements(), logging.getLogger("peewee")
    old_level = peewee_log.level
    peewee_log.setLevel(logging.DEBUG)
    peewee_log.addHandler(handler)
    started = time.monotonic()
    try:
        JobWorker(queue_names_for_group("maintenance"), connection=get_redis()).work(burst=True)
    finally:
        peewee_log.removeHandler(handler)
        peewee_log.setLevel(old_level)
    # the settings version is read at most once a second per process (app/settings_store.py), not per job;
    # its values only when it moved (here: the first look of this process since the test's settings)
    settings_reads = [sql for sql in handler.sql if '"settings' in sql]
    assert len(settings_reads) <= 2 * (1 + int(time.monotonic() - started)), settings_reads
    assert len(handler.sql) - len(settings_reads) == 2 * len(ids), handler.sql
    for job_id in ids:
        assert Job.get_by_id(job_id).status == "completed"
        messages = [e.message for e in JobEvent.select().where(JobEvent.job == job_id).order_by(JobEvent.created_at)]
        assert messages == ["Started", "Finished"]


@pytest.mark.slow
def test_a_long_run_shows_its_first_event_while_it_is_still_running(settings, redis_conn):
    job_id = add_job("test_sleep", {"seconds": 3})
    seen: dict = {}

    def watch():  # from another thread (its own database connection) while the worker runs the job
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "at" not in seen:
            if JobEvent.select().where((JobEvent.job == job_id) & (JobEvent.message == "run 1 started")).exists():
                seen["at"], seen["status"] = time.monotonic(), Job.get_by_id(job_id).status
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.monotonic()
    watcher.start()
    drain(queue_names_for_group("testing"))
    watcher.join(5)
    assert Job.get_by_id(job_id).status == "completed"
    assert seen.get("status") == "active"  # shown while the 3 s run was still going
    print(f"first event of a long run visible after {seen['at'] - started:.2f} s (hold {HOLD_SECONDS} s)")


def test_held_events_of_a_run_that_lost_its_lease_are_not_stored(settings, redis_conn):
    from datetime import timedelta

    from app.jobs import state
    from app.jobs.held_events import write_held_events
    from app.models import utcnow

    job_id = add_job("noop", {})
    run = fence.begin(job_id)
    try:
        create_job_logger(job_id, "Test").info("held")
        assert run.held_events
        # the sweep declares the run dead: its token is cleared
        assert state.mark_attempt_failed(job_id, error="lost", trace=None, final=False, retry_in=1,
                                         abandoned_before=utcnow() + timedelta(seconds=1))
        write_held_events(run)
    finally:
        fence.end()
    assert not JobEvent.select().where((JobEvent.job == job_id) & (JobEvent.message == "held")).exists()

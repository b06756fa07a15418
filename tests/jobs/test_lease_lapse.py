"""A run that cannot write its lease in the database (PostgreSQL unreachable from its host, Redis not) lets
RQ's lease lapse too, so that the scheduler's sweep retries the job elsewhere (the partition scenario of
tests/faults/test_hosts.py: before, the run held its job in Redis for as long as the cut lasted)."""
from __future__ import annotations

from types import SimpleNamespace

from app.jobs import fence
from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from workers.worker import JobWorker

import jobtypes  # noqa: F401


def test_rq_lease_lapses_once_the_database_lease_went_unrenewed_for_a_lease(settings, redis_conn, monkeypatch):
    worker = JobWorker(queue_names_for_group("maintenance"), connection=redis_conn)
    beats: list = []
    monkeypatch.setattr(worker, "maintain_heartbeats", beats.append)
    job_id = add_job("noop", {})
    rq_job = SimpleNamespace(id=f"job-{job_id}")
    worker._running_job, worker.execution = rq_job, object()
    run = fence.begin(job_id)
    assert run is not None
    try:
        assert worker.beat_once() and beats == [rq_job]
        run.confirmed -= fence.lease_seconds() - 1          # unrenewed for less than a lease: still beating
        assert worker.beat_once() and len(beats) == 2
        run.confirmed -= 2                                   # now longer than a lease
        assert not worker.beat_once() and len(beats) == 2
        run.confirmed += 60                                  # the database answered again: beats resume
        assert worker.beat_once() and len(beats) == 3
        run.lost = True                                      # another run owns the job
        assert not worker.beat_once() and len(beats) == 3
    finally:
        fence.end()
    assert not fence.lease_unconfirmed()                     # outside a run

"""Recovery passes run by the scheduler process: abandoned jobs and jobs Redis lost.

- Abandoned: a worker killed mid-job (kill -9, OOM, host lost) leaves its job in RQ's
  StartedJobRegistry until the job's heartbeat expires. RQ only sweeps that registry between
  dequeues of a worker on the same queue (or never, when the queue's workers are all gone), so the
  scheduler sweeps every queue every few seconds; RQ then calls on_failure(AbandonedJobError) and
  applies the retry policy. This must run in a main thread (RQ's callback timeout uses SIGALRM).
- Lost: with Redis persistence off, a Redis restart drops queued jobs. A jobs row that is still
  pending/delayed/stuck after a grace period but has no RQ job is enqueued again with the same id.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from rq import Queue
from rq.registry import StartedJobRegistry

from app.jobs import state, types
from app.jobs.logger import create_job_logger
from app.jobs.queues import queue_names_for_type
from app.jobs.types import Priority
from app.models import Job, JobStatus, utcnow

log = logging.getLogger(__name__)
LOST_JOB_GRACE = timedelta(seconds=60)


def sweep_abandoned_jobs(connection: Any) -> int:
    """Hand expired StartedJobRegistry entries to RQ's cleanup (callbacks + retry). Returns entries swept."""
    swept = 0
    for job_type in types.all_types():
        for name in queue_names_for_type(job_type.name):
            registry = StartedJobRegistry(queue=Queue(name, connection=connection))
            expired = registry.get_expired_job_ids()
            if expired:
                log.warning("%s: %d abandoned job(s): %s", name, len(expired), ", ".join(expired))
                registry.cleanup()
                swept += len(expired)
    return swept


def requeue_lost_jobs(connection: Any, now: Any = None) -> list[str]:
    """Enqueue again the waiting rows whose RQ job no longer exists. Returns their ids."""
    from app.jobs.service import _enqueue

    cutoff = (now or utcnow()) - LOST_JOB_GRACE
    waiting = list(Job.select().where(
        Job.status.in_([JobStatus.PENDING.value, JobStatus.DELAYED.value, JobStatus.STUCK.value])
        & (Job.updated_at < cutoff) & Job.rq_job_id.is_null(False)).limit(500))
    if not waiting:
        return []
    with connection.pipeline() as pipe:
        for row in waiting:
            pipe.exists(f"rq:job:{row.rq_job_id}")
        present = pipe.execute()
    requeued = []
    for row, exists in zip(waiting, present):
        definition = types.get(row.type)
        if exists or definition is None or not state.reset_for_requeue(row.id):
            continue
        remaining = max(row.max_attempts - row.attempts, 1)
        _enqueue(definition, row.payload, Priority.parse(row.priority), remaining, 0)
        create_job_logger(str(row.id), "JobQueue").warn("Job was missing from Redis (restart without "
                                                        "persistence?); enqueued again")
        requeued.append(str(row.id))
    return requeued

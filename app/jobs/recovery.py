"""Recovery passes run by the scheduler process: abandoned jobs and jobs Redis lost.

- Abandoned: a worker killed mid-job (kill -9, OOM, host lost) leaves its job in RQ's
  StartedJobRegistry until the job's heartbeat expires. RQ only sweeps that registry between
  dequeues of a worker on the same queue (or never, when the queue's workers are all gone), so the
  scheduler sweeps every queue every few seconds; RQ then calls on_failure(AbandonedJobError) and
  applies the retry policy. This must run in a main thread (RQ's callback timeout uses SIGALRM).
- Expired leases: a run renews `jobs.heartbeat_at` (app/jobs/fence.py); an active row whose lease
  expired and that RQ no longer tracks (lost with Redis) is declared dead here and retried or failed.
- Lost: with Redis persistence off, a Redis restart drops queued jobs. A jobs row that is still
  pending/delayed/stuck after a grace period but has no live RQ job is enqueued again with the same id.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from peewee import fn
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.registry import StartedJobRegistry

from app.config import get_settings
from app.jobs import fence, poll_batches, state, types
from app.jobs.final_failure import after_final_failure
from app.jobs.logger import create_job_logger
from app.jobs.queues import queue_names_for_type
from app.jobs.service import enqueue_run
from app.jobs.types import Priority
from app.models import Job, JobStatus, status_values, utcnow

log = logging.getLogger(__name__)
# A waiting row and its RQ job are written milliseconds apart (add_job, a retry, a poll): a row still
# without a live RQ job this long after its last change was lost.
LOST_JOB_GRACE = timedelta(seconds=10)


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


def sweep_expired_leases(connection: Any, now: Any = None) -> list[str]:
    """Declare dead the active runs whose lease in the database expired and that RQ no longer tracks.

    RQ tracks a running job in a StartedJobRegistry; when that entry expires, `sweep_abandoned_jobs`
    hands it to RQ (callbacks, retry). This pass covers what RQ cannot see: the run's job is gone from
    Redis (restart without persistence), or its entry was already cleaned while the database lease was
    still alive. Each such run is recorded as abandoned (token cleared: if it was only paused, its later
    writes are refused), then re-enqueued with its remaining attempts, or failed with its request.
    Returns the ids handled.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=fence.lease_seconds())
    expired = list(Job.select(Job.id, Job.type, Job.rq_job_id, Job.attempts, Job.max_attempts, Job.payload,
                              Job.priority, Job.polling)
                   .where((Job.status == JobStatus.ACTIVE.value)
                          & (fn.COALESCE(Job.heartbeat_at, Job.started_at) < cutoff)).limit(500))
    if not expired:
        return []
    tracked = _started_job_ids(connection, {row.type for row in expired})
    handled = []
    for row in expired:
        if row.rq_job_id in tracked:
            continue  # RQ's own abandoned-job cleanup (sweep_abandoned_jobs) records and retries it
        # A poll spends no attempt (a poll batch lost after its claim, or a first poll's run lost while it
        # polled): its download is polled again, whatever attempts its earlier runs used.
        final = row.attempts >= row.max_attempts and not row.polling
        attempts_left = max(row.max_attempts - row.attempts, 1)
        error = ("Run lost: its worker died or stopped renewing the lease (killed, paused, or the job was "
                 "lost with Redis)")
        retry_in = 0 if final else get_settings().job_backoff_seconds
        if not state.mark_attempt_failed(row.id, error=error, trace=None, final=final, retry_in=retry_in,
                                         abandoned_before=cutoff):
            continue
        logger = create_job_logger(str(row.id), "JobQueue")
        if final:
            logger.error(f"Job failed (no attempts left): {error}")
            after_final_failure(str(row.id), row.type, error)  # as the callbacks' final failure does
        else:
            _discard_rq_job(connection, row.rq_job_id)
            definition = types.get(row.type)
            if definition is not None:
                enqueue_run(definition, row.payload, Priority.parse(row.priority), attempts_left, retry_in)
            logger.warning(f"{error}; retrying in {retry_in} s ({attempts_left} attempt(s) left)")
        handled.append(str(row.id))
    return handled


def _started_job_ids(connection: Any, job_types: set[str]) -> set[str]:
    ids: set[str] = set()
    for job_type in job_types:
        for name in queue_names_for_type(job_type):
            ids.update(StartedJobRegistry(queue=Queue(name, connection=connection)).get_job_ids(cleanup=False))
    return ids


def _discard_rq_job(connection: Any, rq_job_id: str) -> None:
    """Forget a dead run's RQ job (its hash and registry entries) before enqueueing the row again."""
    try:
        RQJob.fetch(rq_job_id, connection=connection).delete(remove_from_queue=True)
    except NoSuchJobError:
        pass
    except ValueError:  # RQ 2.12 raises it when the run's execution hash already expired: drop the job hash
        connection.delete(RQJob.key_for(rq_job_id))


# RQ statuses of a job that will not run again by itself
_RQ_DONE = {b"finished", b"failed", b"stopped", b"canceled"}
# Not an RQ status: the job is `queued` but in no queue. A worker popped it and never started it: its
# connection was cut off (a partitioned host) after Redis had handed it the job, which is lost in flight
# until that worker hears from Redis again, if ever. Any other worker would have marked it started within
# milliseconds of its pop; a rare false positive is harmless (the fence lets one run of the row start).
_IN_FLIGHT = b"in-flight"
_RQ_STATUS = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then
  local origin = redis.call('HGET', KEYS[1], 'origin')
  if origin and not redis.call('LPOS', ARGV[1] .. origin, ARGV[2]) then return 'in-flight' end
end
return status
"""


def requeue_lost_jobs(connection: Any, now: Any = None) -> list[str]:
    """Enqueue again the waiting rows (pending/delayed/stuck) that no RQ job will run: their RQ job is
    gone (Redis restarted without persistence), ended (e.g. its failure could not be recorded while
    the database was down) or was handed to a worker that never got it (in flight to a partitioned
    host). Returns their ids."""
    cutoff = (now or utcnow()) - LOST_JOB_GRACE
    where = (Job.status.in_(status_values(JobStatus.WAITING)) & (Job.updated_at < cutoff)
             & Job.rq_job_id.is_null(False))
    if poll_batches.enabled():  # a waiting poll (delayed + polling) has no RQ job: poll_batches.repair_lost's
        where &= ~poll_batches.waiting_poll()
    waiting = list(Job.select().where(where).limit(500))
    if not waiting:
        return []
    rq_status_of = connection.register_script(_RQ_STATUS)
    with connection.pipeline() as pipe:
        for row in waiting:
            rq_status_of(keys=[RQJob.key_for(row.rq_job_id)], args=[Queue.redis_queue_namespace_prefix,
                                                                   row.rq_job_id], client=pipe)
        rq_statuses = pipe.execute()
    requeued = []
    for row, rq_status in zip(waiting, rq_statuses, strict=True):
        definition = types.get(row.type)
        lost = rq_status is None or rq_status in _RQ_DONE or rq_status == _IN_FLIGHT
        if not lost or definition is None or not state.reset_for_requeue(row.id):
            continue
        if rq_status is not None:
            _discard_rq_job(connection, row.rq_job_id)
        remaining = max(row.max_attempts - row.attempts, 1)
        enqueue_run(definition, row.payload, Priority.parse(row.priority), remaining, 0)
        create_job_logger(str(row.id), "JobQueue").warning(_lost_reason(rq_status))
        requeued.append(str(row.id))
    return requeued


def _lost_reason(rq_status: bytes | None) -> str:
    if rq_status is None:
        return "Job was missing from Redis (restart without persistence?); enqueued again"
    if rq_status == _IN_FLIGHT:
        return "Job was handed to a worker that never started it (cut off from Redis?); enqueued again"
    return f"Job's RQ run ended ({rq_status.decode()}) but its row still waits; enqueued again"

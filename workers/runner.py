"""The function every RQ job calls: mark the run active, then hand the payload to its processor.

A processor that polls (monitor_download) returns `Reschedule(delay, state)`: the same jobs row comes
back after `delay` seconds, without holding a worker while waiting and without spending an attempt. On
PostgreSQL its id goes into the due set of the poll batches (app/jobs/poll_batches.py), which poll many
downloads per RQ run (workers/poll_batch.py); on SQLite the same RQ job comes back (RQ re-schedules a job
that returns a `Retry`), its poll state in the RQ job's meta. Either way the state is in the row's payload.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import peewee
from rq import Retry, get_current_job

from app.db import ensure_bound
from app.errors import PermanentJobError
from app.jobs import fence, metrics, poll_batches, state
from app.redis_connection import get_redis
from workers import processors
from workers.context import Reschedule

_POLL_STATE = "pollState"
DATABASE_OUTAGE_RETRY_SECONDS = 3
log = logging.getLogger(__name__)
_UNLIMITED_POLLS = 10**9


def run_job(job_type: str, payload: dict) -> Any:
    ensure_bound()
    job_id = payload.get("jobId")
    if not job_id:
        raise PermanentJobError(f"{job_type}: payload has no jobId; jobs must be created through add_job")
    try:
        run = fence.begin(job_id)
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        # PostgreSQL unreachable (restarting): nothing has run. Come back later without spending one of
        # the job's attempts, which a restart of a few seconds would otherwise use up.
        log.warning("job %s: database unreachable at start (%s); trying again in %d s", job_id,
                    type(exc).__name__, DATABASE_OUTAGE_RETRY_SECONDS)
        return Retry(max=_UNLIMITED_POLLS, interval=DATABASE_OUTAGE_RETRY_SECONDS)
    if run is None:
        # Cancelled (or finished) while it waited in Redis, its row is gone, or another run holds it.
        return {"skipped": True, "reason": "job is cancelled, finished, unknown or running elsewhere"}
    processor = processors.get(job_type)
    if processor is None:
        raise PermanentJobError(f"no processor is registered for job type {job_type!r}")
    rq_job = get_current_job()
    carried = rq_job.meta.get(_POLL_STATE) if rq_job is not None else None
    outcome = processor({**payload, **carried} if carried else payload)
    if isinstance(outcome, Reschedule):
        return _reschedule(job_type, run, payload, outcome, rq_job)
    return outcome


def _reschedule(job_type: str, run: fence.Run, payload: dict, outcome: Reschedule, rq_job: Any) -> Retry | dict:
    due_at = round(time.time() + outcome.delay, 3)
    outcome.state["pollDueAt"] = due_at  # shows the next poll; measures poll lag
    batched = poll_batches.polls_in_batches(job_type)
    if rq_job is not None:
        if not batched:
            rq_job.meta[_POLL_STATE] = outcome.state
            rq_job.save_meta()
        metrics.record_run(rq_job.connection, job_type, "polled", run.age())
    fence.end(run.job_id)  # writes the run's held events first
    if not state.mark_waiting_for_poll(run.job_id, outcome.delay, {**payload, **outcome.state}, run.token):
        raise fence.LeaseLost(f"job {run.job_id}: lease lost during the poll; the run that owns it polls on")
    if batched:
        # The row first, then its entry in the due set: a poll batch polls it next (workers/poll_batch.py).
        # This RQ job ends here; on_success writes nothing (the run has ended).
        poll_batches.schedule(get_redis(), {run.job_id: due_at})
        return {"polling": True, "nextPollIn": outcome.delay}
    return Retry(max=_UNLIMITED_POLLS, interval=max(1, math.ceil(outcome.delay)))

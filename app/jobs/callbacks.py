"""RQ callbacks: they turn what happened in a worker into job state (through app.jobs.state).

RQ 2.12 facts this relies on (measured against RQ 2.12; the lifecycle and failure-path tests exercise them):
- on_failure runs once per failed attempt, before RQ's retry decision, with `job.retries_left`
  not yet decremented: the attempt was the last one when retries_left is None or 0;
- setting `job.retries_left = 0` in on_failure makes RQ skip the remaining retries (permanent errors);
- abandoned jobs (worker killed) reach on_failure through StartedJobRegistry.cleanup with
  AbandonedJobError; a work-horse killed under a living fork worker reaches no callback at all,
  so the worker calls `on_work_horse_killed` itself.
"""
from __future__ import annotations

import logging
import traceback
from datetime import timedelta
from typing import Any

from rq.exceptions import AbandonedJobError
from rq.job import Job as RQJob

from app.db import ensure_bound
from app.errors import PermanentJobError
from app.jobs import fence, metrics, retention, state
from app.jobs.final_failure import after_final_failure
from app.jobs.held_events import take_held_events
from app.jobs.logger import create_job_logger
from app.jobs.queues import type_of_queue
from app.jobs.service import db_id_from_rq_id
from app.models import utcnow

log = logging.getLogger(__name__)


def _format_trace(tb: Any) -> str | None:
    if tb is None:
        return None
    if isinstance(tb, (list, traceback.StackSummary)):
        return "".join(traceback.format_list(tb))
    try:
        return "".join(traceback.format_tb(tb))
    except Exception:
        return str(tb)


def on_success(job: RQJob, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    db_id = db_id_from_rq_id(job.id)
    if db_id is None:
        return
    ensure_bound()
    # The run ends here; its held events are written with its completion, in the same round trip. No run: the
    # runner skipped the job (cancelled, finished, held by another run); its row is left as it is.
    run = fence.end(db_id, keep_events=True)
    if run is not None:
        if not state.mark_completed(db_id, result, run.token, take_held_events(run)):
            log.warning("job %s: this run lost its lease before completing; its result is discarded", db_id)
    # A first poll that went on to the poll batches ended as "polled" in the runner (workers/runner.py): its
    # RQ job is trimmed here but not counted a second time.
    polled = isinstance(result, dict) and result.get("polling") is True
    retention.trim_redis(connection, type_of_queue(job.origin), job.id, finished=True,
                         outcome=None if polled else "completed", seconds=0.0 if polled else metrics.run_seconds(job))


def on_failure(job: RQJob, connection: Any, exc_type: Any, exc_value: Any, tb: Any, *args: Any, **kwargs: Any) -> None:
    db_id = db_id_from_rq_id(job.id)
    if db_id is None:
        return
    ensure_bound()
    if isinstance(exc_value, (fence.LeaseLost, fence.RunStopped)):
        # A stale run noticed it was fenced out, or a stopped run reached a checkpoint: the row is another
        # run's or already cancelled (app/jobs/stopping.py); write nothing, retry nothing.
        fence.end(db_id, lost=True)  # its held events are dropped: they would be refused
        job.retries_left = 0
        log.warning("%s", exc_value)
        return
    abandoned = exc_type is AbandonedJobError or isinstance(exc_value, AbandonedJobError)
    if abandoned:
        error = "Worker process died while running the job (abandoned: killed, OOM or host lost)"
    else:
        error = f"{getattr(exc_type, '__name__', exc_type)}: {exc_value}"
    # The run is over (its held events written first): what follows is written on its behalf, not fenced by it.
    # An abandoned run is another process's: this one has no run of it.
    run = None if abandoned else fence.end(db_id)
    record_failed_attempt(job, db_id, error, _format_trace(tb), permanent=isinstance(exc_value, PermanentJobError),
                          abandoned=abandoned, token=run.token if run else None)


def on_stopped(job: RQJob, connection: Any, *args: Any, **kwargs: Any) -> None:
    db_id = db_id_from_rq_id(job.id)
    if db_id is None:
        return
    ensure_bound()
    # Already cancelled when the stop came through app/jobs/stopping.py, which said who stopped it.
    if state.mark_cancelled(db_id, "Stopped by an admin while running"):
        create_job_logger(db_id, "JobQueue").warning("Job stopped by an admin while running")


def on_work_horse_killed(job: RQJob, retpid: int, ret_val: int, rusage: Any) -> None:
    """Fork workers: the horse died (SIGKILL, OOM) while its worker lives; RQ retries it next.
    The horse is certainly dead, so its run is declared abandoned whatever its last heartbeat."""
    db_id = db_id_from_rq_id(job.id)
    if db_id is None:
        return
    ensure_bound()
    record_failed_attempt(job, db_id, f"Work-horse process terminated unexpectedly (wait status {ret_val})", None,
                          permanent=False, abandoned=True, abandoned_before=utcnow() + timedelta(seconds=1))


def record_failed_attempt(job: RQJob, db_id: str, error: str, trace: str | None, *, permanent: bool,
                          abandoned: bool, token: str | None = None, abandoned_before: Any = None) -> None:
    """Write one failed run through app.jobs.state, fenced; when it was the last one, what follows a final failure
    (app/jobs/final_failure.py: the request's hook, the job_failed notification).

    When the write is refused (a stale run, or an abandoned run whose database lease is still alive),
    RQ must not retry either: the row belongs to another run, or the lease sweep will decide."""
    if permanent:
        job.retries_left = 0  # RQ reads this right after the callback: no further attempts
    final = not job.retries_left
    retry_in = None if final else job.get_retry_interval()
    if abandoned and abandoned_before is None:
        # RQ's lease in Redis expired. Both leases are renewed every third of the lease by the same
        # worker, so a live run's database heartbeat is never older than that; an older one means the
        # run stopped, even when the database lease has not quite expired yet.
        abandoned_before = utcnow() - timedelta(seconds=fence.lease_seconds() * 2 / 3)
    written = state.mark_attempt_failed(db_id, error=error, trace=trace, final=final, retry_in=retry_in,
                                        token=token, abandoned_before=abandoned_before if abandoned else None)
    if not written:
        job.retries_left = 0
        log.warning("job %s: failed run not recorded (the row is owned by another run, finished, or its lease "
                    "is still alive); RQ will not retry it: %s", db_id, error[:300])
        return
    logger = create_job_logger(db_id, "JobQueue")
    seconds = 0.0 if abandoned else metrics.run_seconds(job)
    if final:
        reason = "permanent error, not retried" if permanent else "no attempts left"
        logger.error(f"Job failed ({reason}): {error}")
        retention.trim_redis(job.connection, type_of_queue(job.origin), job.id, finished=False, outcome="failed",
                             seconds=seconds)
        after_final_failure(db_id, type_of_queue(job.origin), error)
    else:
        metrics.record_run(job.connection, type_of_queue(job.origin), "retried", seconds)
        logger.warning(f"Attempt failed: {error}. Retrying in {retry_in} s ({job.retries_left} retr"
                    f"{'y' if job.retries_left == 1 else 'ies'} left)")


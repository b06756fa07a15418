"""RQ callbacks: they turn what happened in a worker into job state (through app.jobs.state).

RQ 2.12 facts this relies on (shared/reference/rq-notes.md §1):
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
from typing import Any

from rq.exceptions import AbandonedJobError
from rq.job import Job as RQJob

from app.db import ensure_bound
from app.jobs import retention, state
from app.jobs.errors import PermanentJobError
from app.jobs.logger import create_job_logger
from app.jobs.queues import type_of_queue
from app.jobs.service import db_id_from_rq_id

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
    state.mark_completed(db_id, result)
    retention.trim_redis(connection, type_of_queue(job.origin), job.id, finished=True)


def on_failure(job: RQJob, connection: Any, exc_type: Any, exc_value: Any, tb: Any, *args: Any, **kwargs: Any) -> None:
    db_id = db_id_from_rq_id(job.id)
    if db_id is None:
        return
    ensure_bound()
    abandoned = exc_type is AbandonedJobError or isinstance(exc_value, AbandonedJobError)
    if abandoned:
        error = "Worker process died while running the job (abandoned: killed, OOM or host lost)"
    else:
        error = f"{getattr(exc_type, '__name__', exc_type)}: {exc_value}"
    record_failed_attempt(job, db_id, error, _format_trace(tb), permanent=isinstance(exc_value, PermanentJobError),
                          abandoned=abandoned)


def on_stopped(job: RQJob, connection: Any, *args: Any, **kwargs: Any) -> None:
    db_id = db_id_from_rq_id(job.id)
    if db_id is None:
        return
    ensure_bound()
    state.mark_cancelled(db_id, "Stopped by an admin while running")
    create_job_logger(db_id, "JobQueue").warn("Job stopped by an admin while running")


def on_work_horse_killed(job: RQJob, retpid: int, ret_val: int, rusage: Any) -> None:
    """Fork workers: the horse died (SIGKILL, OOM) while its worker lives; RQ retries it next."""
    db_id = db_id_from_rq_id(job.id)
    if db_id is None:
        return
    ensure_bound()
    record_failed_attempt(job, db_id, f"Work-horse process terminated unexpectedly (wait status {ret_val})", None,
                          permanent=False, abandoned=True)


def record_failed_attempt(job: RQJob, db_id: str, error: str, trace: str | None, *, permanent: bool,
                          abandoned: bool) -> None:
    if permanent:
        job.retries_left = 0  # RQ reads this right after the callback: no further attempts
    final = not job.retries_left
    retry_in = None if final else job.get_retry_interval()
    state.mark_attempt_failed(db_id, error=error, trace=trace, final=final, retry_in=retry_in, abandoned=abandoned)
    logger = create_job_logger(db_id, "JobQueue")
    if final:
        reason = "permanent error, not retried" if permanent else "no attempts left"
        logger.error(f"Job failed ({reason}): {error}")
        retention.trim_redis(job.connection, type_of_queue(job.origin), job.id, finished=False)
    else:
        logger.warn(f"Attempt failed: {error}. Retrying in {retry_in} s ({job.retries_left} retr"
                    f"{'y' if job.retries_left == 1 else 'ies'} left)")

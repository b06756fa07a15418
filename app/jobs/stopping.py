"""Stop a running job (the queues page's and the job page's Stop, POST /api/admin/job-stop/<id>).

1. The row goes `cancelled` with who stopped it, and its run token is cleared: the run is fenced off at
   once, nothing it writes afterwards lands (app/jobs/fence.py), and no retry follows.
2. Its worker is told over RQ's command channel: a simple worker marks the run stopped, and the run
   raises fence.RunStopped at its next checkpoint (a JobLogger call, fence.checkpoint() in a loop); a
   fork worker kills the work-horse at once (RQ's own stop-job).
3. A run still going STOP_GRACE_SECONDS later (stuck in a sleep or a C call) has its worker process
   killed by the supervisor, which starts a new one (workers/supervisor.py).
"""
from __future__ import annotations

import logging
from typing import Any

from app.jobs import state
from app.jobs.logger import create_job_logger
from app.jobs.service import JobActionError, get_job
from app.models import JobStatus

STOP_GRACE_SECONDS = 30.0
log = logging.getLogger(__name__)


def stop_job(job_id: Any, by: str, connection: Any) -> dict:
    """Stop an active job; `by` names who did (shown on the job). Raises JobActionError: 404 unknown, 409 not
    active. Returns {jobId, stoppedBy, workerSignalled} (False: no live worker holds the run in Redis)."""
    job = get_job(job_id)
    if job is None:
        raise JobActionError("job not found", status=404)
    if job.status != JobStatus.ACTIVE.value:
        raise JobActionError(f"only active jobs can be stopped (this one is {job.status})")
    if not state.mark_stopped(job.id, f"Stopped by {by} while running"):
        raise JobActionError("the job ended meanwhile")
    create_job_logger(str(job.id), "JobQueue", outside_run=True).warning(
        f"Stopped by {by} while running: the run is fenced off and stops at its next checkpoint; a worker that "
        f"has not stopped it within {STOP_GRACE_SECONDS:.0f} s is restarted")
    return {"jobId": str(job.id), "stoppedBy": by, "workerSignalled": _signal_worker(connection, job.rq_job_id)}


def _signal_worker(connection: Any, rq_job_id: str | None) -> bool:
    """Send RQ's stop-job command to the worker running the job. Best effort: the row is already cancelled."""
    from rq.command import send_command
    from rq.job import Job as RQJob

    if not rq_job_id:
        return False
    try:
        worker_name = RQJob.fetch(rq_job_id, connection=connection).worker_name
        if not worker_name:
            return False
        send_command(connection, worker_name, "stop-job", job_id=rq_job_id)
        return True
    except Exception as exc:  # the job's hash is gone, or Redis is down: the run is fenced off all the same
        log.warning("job %s: could not tell its worker to stop (%s)", rq_job_id, type(exc).__name__)
        return False

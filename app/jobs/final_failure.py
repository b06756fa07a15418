"""What follows a job's final failure, wherever it was decided: the callbacks' last attempt
(`callbacks.record_failed_attempt`) and the lease sweep's (`recovery.sweep_expired_leases`).

Both consequences live above the job system, so they are reached by dotted path, resolved when a job fails
(the job package imports neither; tests/architecture/test_layers.py):
- the type's `final_failure_hook` (app/jobs/types.py), `f(request_id, job_type, reason) -> bool`: the request
  steps name app/audiobook_requests/failures.fail_request_for_job, which fails the request while it is still in
  that step;
- JOB_FAILED_NOTIFIER, `f(job_id, job_type, error)`: the job_failed notification.
These events are written after the run ended: unfenced, on the job's behalf.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from app.jobs import types
from app.jobs.logger import create_job_logger
from app.models import Job

JOB_FAILED_NOTIFIER = "app.notifications.events.job_failed"


def resolve(path: str) -> Callable[..., Any]:
    """The function a dotted path names (`package.module.function`)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def after_final_failure(db_id: str, job_type: str, error: str) -> None:
    """The job `db_id` of `job_type` failed for good with `error`: fail its request (when its type says so),
    then notify."""
    try:
        fail_request_of_job(db_id, error)
    finally:  # a hook that fails (a wrong path raises here, loudly) still lets the admin be told
        resolve(JOB_FAILED_NOTIFIER)(db_id, job_type, error)


def fail_request_of_job(db_id: str, error: str) -> None:
    """A job's last run failed: its request (if any) fails with the reason, through its type's hook."""
    row = Job.select(Job.request, Job.type).where(Job.id == db_id).first()
    if row is None or row.request_id is None:
        return
    hook = getattr(types.get(row.type), "final_failure_hook", "")
    if hook and resolve(hook)(row.request_id, row.type, f"{row.type} failed: {error}"):
        create_job_logger(db_id, "JobQueue").error(f"Request {row.request_id} marked failed: {error[:500]}")

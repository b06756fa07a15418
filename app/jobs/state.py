"""The one module that writes job state (jobs.status and its companion columns).

Every write is a single conditional UPDATE, so a late or repeated callback can never move a job
backwards: a cancelled job stays cancelled, a completed job is never turned into a failure.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from app.jobs.redact import redact, redact_text
from app.models import Job, JobStatus, utcnow

S = JobStatus
_MAX_TRACE = 20_000


def _secrets() -> list[str]:
    from app.config import get_settings

    return get_settings().secret_values()


def insert_job_row(*, job_id: uuid.UUID, job_type: str, payload: dict, priority: int, max_attempts: int,
                   request_id: Any, rq_job_id: str, run_at: datetime | None,
                   scheduled_job_id: Any = None) -> Job:
    """The row every run starts with: `pending`, or `delayed` when it is due later."""
    status = S.DELAYED if run_at is not None else S.PENDING
    return Job.create(id=job_id, type=job_type, status=status.value, priority=priority, max_attempts=max_attempts,
                      payload=redact(payload, _secrets()), request=request_id, rq_job_id=rq_job_id, run_at=run_at,
                      scheduled_job_id=scheduled_job_id)


def mark_enqueue_failed(job_id: Any, error: BaseException) -> None:
    Job.update(status=S.FAILED.value, error_message=redact_text(f"Could not enqueue: {error}", _secrets()),
               completed_at=utcnow(), updated_at=utcnow()).where(Job.id == job_id).execute()


def mark_active(job_id: Any) -> bool:
    """A run starts: status active, attempts + 1. False when the job must not run (cancelled, finished)."""
    now = utcnow()
    updated = (Job.update(status=S.ACTIVE.value, attempts=Job.attempts + 1, started_at=now, updated_at=now)
               .where((Job.id == job_id) & Job.status.not_in([S.CANCELLED.value, S.COMPLETED.value, S.FAILED.value]))
               .execute())
    return updated == 1


def mark_completed(job_id: Any, result: Any) -> bool:
    now = utcnow()
    return (Job.update(status=S.COMPLETED.value, result=redact(result, _secrets()), error_message=None,
                       completed_at=now, updated_at=now)
            .where((Job.id == job_id) & Job.status.not_in([S.CANCELLED.value, S.COMPLETED.value]))
            .execute()) == 1


def mark_attempt_failed(job_id: Any, *, error: str, trace: str | None, final: bool, retry_in: float | None,
                        abandoned: bool = False) -> bool:
    """Record a failed run.

    final: no attempt remains → `failed`. Otherwise → `stuck` when the worker died under the job
    (abandoned), else `delayed` until the retry is due in `retry_in` seconds.
    """
    now = utcnow()
    secrets = _secrets()
    values: dict[str, Any] = {
        "error_message": redact_text(error, secrets)[:5000],
        "stack_trace": redact_text(trace, secrets)[-_MAX_TRACE:] if trace else None,
        "updated_at": now,
    }
    if final:
        values.update(status=S.FAILED.value, completed_at=now)
    else:
        values.update(status=(S.STUCK if abandoned else S.DELAYED).value,
                      run_at=now + timedelta(seconds=retry_in or 0))
    return (Job.update(**values)
            .where((Job.id == job_id) & Job.status.not_in([S.CANCELLED.value, S.COMPLETED.value, S.FAILED.value]))
            .execute()) == 1


def mark_cancelled(job_id: Any, reason: str) -> bool:
    now = utcnow()
    return (Job.update(status=S.CANCELLED.value, error_message=reason, completed_at=now, updated_at=now)
            .where((Job.id == job_id) & Job.status.not_in([S.CANCELLED.value, S.COMPLETED.value, S.FAILED.value]))
            .execute()) == 1


def reset_for_requeue(job_id: Any) -> bool:
    """A pending/delayed/stuck row whose Redis job was lost is enqueued again (see reconcile)."""
    return (Job.update(status=S.PENDING.value, updated_at=utcnow())
            .where((Job.id == job_id) & Job.status.in_([S.PENDING.value, S.DELAYED.value, S.STUCK.value]))
            .execute()) == 1

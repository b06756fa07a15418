"""The one module that writes job state (jobs.status and its companion columns).

Every write is a single conditional UPDATE, so a late or repeated callback can never move a job
backwards: a cancelled job stays cancelled, a completed job is never turned into a failure.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from app.db import database
from app.jobs.redact import redact, redact_text
from app.models import Job, JobStatus, utcnow

S = JobStatus
_MAX_TRACE = 20_000
_NOT_FINISHED = (S.CANCELLED.value, S.COMPLETED.value, S.FAILED.value)

# The two writes every run makes are pre-built SQL: Peewee's query building costs as much as the
# round trip itself (bench/throughput.py). Same conditions as the Peewee forms below.
_MARK_ACTIVE = ("UPDATE jobs SET status = {p}, attempts = attempts + CASE WHEN polling THEN 0 ELSE 1 END, "
                "polling = {p}, started_at = {p}, updated_at = {p} WHERE id = {p} AND status NOT IN ({p}, {p}, {p})")
_MARK_COMPLETED = ("UPDATE jobs SET status = {p}, result = {p}, error_message = NULL, completed_at = {p}, "
                   "updated_at = {p} WHERE id = {p} AND status NOT IN ({p}, {p})")


@lru_cache(maxsize=16)
def _sql(template: str, param: str) -> str:
    return template.format(p=param)


def _execute(template: str, params: tuple) -> int:
    db = database.obj
    return db.execute_sql(_sql(template, db.param), params).rowcount


def _uuid_param(value: Any) -> str:
    """The form Peewee's UUIDField stores: 32 hex digits (SQLite text; PostgreSQL's uuid accepts it)."""
    return (value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))).hex


def _secrets() -> list[str]:
    from app.config import get_settings

    return get_settings().secret_values()


_INSERT_JOB = ("INSERT INTO jobs (id, created_at, updated_at, request_id, rq_job_id, type, status, priority, "
               "attempts, max_attempts, payload, scheduled_job_id, run_at, polls, polling) "
               "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, 0, {p}, {p}, {p}, {p}, 0, {p})")


def insert_job_row(*, job_id: uuid.UUID, job_type: str, payload: dict, priority: int, max_attempts: int,
                   request_id: Any, rq_job_id: str, run_at: datetime | None, scheduled_job_id: Any = None) -> None:
    """The row every run starts with: `pending`, or `delayed` when it is due later."""
    status = S.DELAYED if run_at is not None else S.PENDING
    now = utcnow()
    _execute(_INSERT_JOB, (
        _uuid_param(job_id), now, now, _uuid_param(request_id) if request_id else None, rq_job_id, job_type, status.value,
        priority, max_attempts, json.dumps(redact(payload, _secrets()), allow_nan=False),
        _uuid_param(scheduled_job_id) if scheduled_job_id else None, run_at, False))


def mark_enqueue_failed(job_id: Any, error: BaseException) -> None:
    Job.update(status=S.FAILED.value, error_message=redact_text(f"Could not enqueue: {error}", _secrets()),
               completed_at=utcnow(), updated_at=utcnow()).where(Job.id == job_id).execute()


def mark_active(job_id: Any) -> bool:
    """A run starts: status active, attempts + 1. False when the job must not run (cancelled, finished)."""
    now = utcnow()
    return _execute(_MARK_ACTIVE, (S.ACTIVE.value, False, now, now, _uuid_param(job_id), *_NOT_FINISHED)) == 1


def mark_waiting_for_poll(job_id: Any, delay: float, payload: dict) -> bool:
    """A polling job (monitor_download) ends this run and comes back in `delay` s: `delayed`, same row,
    no attempt spent; its payload carries the poll state forward."""
    now = utcnow()
    return (Job.update(status=S.DELAYED.value, polling=True, polls=Job.polls + 1, payload=redact(payload, _secrets()),
                       run_at=now + timedelta(seconds=delay), error_message=None, updated_at=now)
            .where((Job.id == job_id) & (Job.status == S.ACTIVE.value)).execute()) == 1


def mark_completed(job_id: Any, result: Any) -> bool:
    now = utcnow()
    stored = json.dumps(redact(result, _secrets()), allow_nan=False) if result is not None else None
    return _execute(_MARK_COMPLETED, (S.COMPLETED.value, stored, now, now, _uuid_param(job_id),
                                      S.CANCELLED.value, S.COMPLETED.value)) == 1


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

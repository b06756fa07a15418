"""The job service: `add_job` is the one way any run of any job starts.

A request, a schedule tick, Trigger Now, the CLI and a processor chaining the next step all call
`add_job`. It validates, writes the jobs row first, then enqueues an RQ job whose id is derived
from the row's id, so the callbacks always find their row. A download's monitor (`poll_batched`, on
PostgreSQL) is the exception: its row waits as a poll and its id goes into the poll batches' due set
(app/jobs/poll_batches.py) instead, so a burst of new downloads is polled at batch speed.
"""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from rq import Callback, Retry

from app.config import get_settings
from app.errors import AppError
from app.jobs import fence, poll_batches, state, types
from app.jobs.errors import EnqueueFailed, InvalidPayload, UnknownJobType
from app.jobs.queues import get_queue, get_redis, queue_name
from app.jobs.types import Priority
from app.models import Job, Request, utcnow
from app.validation import parse_uuid

RUNNER = "workers.runner.run_job"  # named by path: app never imports workers
RQ_ID_PREFIX = "job-"
_CALLBACK_TIMEOUT = 30


def rq_job_id(db_id: Any) -> str:
    return f"{RQ_ID_PREFIX}{db_id}"


def db_id_from_rq_id(rq_id: str) -> str | None:
    if not rq_id.startswith(RQ_ID_PREFIX):
        return None
    return parse_uuid(rq_id[len(RQ_ID_PREFIX):])


def retry_policy(max_attempts: int, backoff: int) -> Retry | None:
    """`max_attempts` runs in total, waiting backoff, 2×backoff, 4×backoff... between them."""
    if max_attempts <= 1:
        return None
    return Retry(max=max_attempts - 1, interval=[backoff * 2 ** i for i in range(max_attempts - 1)])


def _validate_payload(job_type: types.JobType, payload: Any) -> dict:
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise InvalidPayload(f"{job_type.name}: payload must be a JSON object, got {type(payload).__name__}")
    missing = [key for key in job_type.required_keys if payload.get(key) in (None, "")]
    if missing:
        raise InvalidPayload(f"{job_type.name}: payload is missing required key(s): {', '.join(missing)}")
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidPayload(f"{job_type.name}: payload is not JSON-serialisable: {exc}") from None
    return dict(payload)


def _delay_seconds(delay: float | timedelta | None) -> float:
    if delay is None:
        return 0.0
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if seconds < 0:
        raise ValueError(f"delay must be >= 0 seconds, got {seconds}")
    return seconds


def add_job(job_type: str, payload: dict | None = None, *, priority: int | str | Priority | None = None,
            delay: float | timedelta | None = None, request_id: Any = None, max_attempts: int | None = None,
            scheduled_job_id: Any = None, poll_batched: bool = False) -> str:
    """Create the jobs row (pending/delayed), then enqueue it on the type's RQ queue.

    `poll_batched` (a polling type whose polls wait in the due set, poll_batches.polls_in_batches: a new
    download's monitor_download): the row is written as a waiting poll instead (`delayed` + `polling`, run_at
    now + delay, no poll state yet), then its id goes into the due set; its first poll is a poll batch's
    (workers/poll_batch.py), which hands anything but a plain "still downloading" to the job's own ordinary
    run. Elsewhere (SQLite) the flag is ignored.

    Returns the database job id (a UUID string), which is also `payload["jobId"]`.
    Raises UnknownJobType / InvalidPayload / ValueError before anything is written, and
    EnqueueFailed (with the row marked failed) when Redis refuses the job.
    """
    run_fence = fence.write_fence()  # a run that lost its lease must not start the next step twice
    definition = types.get(job_type)
    if definition is None:
        known = ", ".join(sorted(t.name for t in types.all_types()))
        raise UnknownJobType(f"unknown job type {job_type!r}; known types: {known}")
    body = _validate_payload(definition, payload)
    level = Priority.parse(priority if priority is not None else definition.priority)
    seconds = _delay_seconds(delay)
    settings = get_settings()
    attempts = max_attempts if max_attempts is not None else settings.job_max_attempts
    if attempts < 1:
        raise ValueError("max_attempts must be at least 1")

    request_id = request_id if request_id is not None else body.get("requestId")
    if request_id is not None:
        request_id = parse_uuid(request_id)
        if request_id is None or not Request.select().where(Request.id == request_id).exists():
            raise InvalidPayload(f"{job_type}: unknown request id {body.get('requestId', request_id)!r}")

    db_id = uuid.uuid4()
    body["jobId"] = str(db_id)
    batched = poll_batched and poll_batches.polls_in_batches(job_type)
    due_at = round(time.time() + seconds, 3)
    if batched:
        body["pollDueAt"] = due_at  # as a rescheduled poll's (workers/runner.py): shows the poll, measures lag
    run_at = utcnow() + timedelta(seconds=seconds) if seconds or batched else None
    if not state.insert_job_row(job_id=db_id, job_type=job_type, payload=body, priority=int(level),
                                max_attempts=attempts, request_id=request_id, rq_job_id=rq_job_id(db_id),
                                run_at=run_at, scheduled_job_id=scheduled_job_id, fence=run_fence, polling=batched):
        fence.lease_lost()  # inside a run whose token is stale: the insert was refused, nothing written
    try:
        if batched:  # the row first, then its entry in the due set (as a rescheduled poll, workers/runner.py)
            poll_batches.schedule(get_redis(), {str(db_id): due_at})
        else:
            enqueue_run(definition, body, level, attempts, seconds)
    except Exception as exc:
        state.mark_enqueue_failed(db_id, exc)
        raise EnqueueFailed(f"{job_type} job {db_id} could not be enqueued: {exc}") from exc
    return str(db_id)


def enqueue_run(definition: types.JobType, payload: dict, level: Priority, attempts: int, delay: float) -> None:
    """Put a run of an existing jobs row (payload["jobId"]) on its RQ queue: `attempts` runs at most,
    starting after `delay` seconds. add_job, the recovery passes and a poll batch handing a download to its own run
    (workers/poll_batch.py) use it; nothing else enqueues."""
    settings = get_settings()
    history_ttl = max(settings.job_history_days, 1) * 86400
    queue = get_queue(queue_name(definition.name, level))
    options: dict[str, Any] = dict(
        job_id=rq_job_id(payload["jobId"]),
        retry=retry_policy(attempts, settings.job_backoff_seconds),
        job_timeout=definition.timeout,
        result_ttl=history_ttl,   # count-based trimming (retention.py) keeps Redis small long before this
        failure_ttl=history_ttl,
        description=f"{definition.name} {payload['jobId']}",
        on_success=Callback("app.jobs.callbacks.on_success", timeout=_CALLBACK_TIMEOUT),
        on_failure=Callback("app.jobs.callbacks.on_failure", timeout=_CALLBACK_TIMEOUT),
        on_stopped=Callback("app.jobs.callbacks.on_stopped", timeout=_CALLBACK_TIMEOUT),
    )
    if delay:
        queue.enqueue_in(timedelta(seconds=delay), RUNNER, definition.name, payload, **options)
    else:
        queue.enqueue(RUNNER, definition.name, payload, **options)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def job_to_dict(job: Job) -> dict[str, Any]:
    """The public shape of a job (job-status API and CLI)."""
    return {
        "id": str(job.id),
        "type": job.type,
        "status": job.status,
        "priority": job.priority,
        "requestId": str(job.request_id) if job.request_id else None,
        "createdAt": _iso(job.created_at),
        "startedAt": _iso(job.started_at),
        "completedAt": _iso(job.completed_at),
        "runAt": _iso(job.run_at),
        "result": job.result,
        "errorMessage": job.error_message,
        "attempts": job.attempts,
        "maxAttempts": job.max_attempts,
        "retriedAt": _iso(job.retried_at),
        "retryJobId": str(job.retry_job_id) if job.retry_job_id else None,
    }


def get_job(job_id: Any) -> Job | None:
    canonical = parse_uuid(job_id)
    if canonical is None:
        return None
    return Job.get_or_none(Job.id == canonical)


class JobActionError(AppError):
    """A retry or cancel that does not apply (409 unless said; `details`: the run an earlier retry started)."""

    status = 409


def cancel_job(job_id: Any) -> None:
    """Cancel a pending or delayed job: its row says cancelled and the runner will skip it."""
    job = get_job(job_id)
    if job is None:
        raise JobActionError("job not found", status=404)
    if not job.can_cancel:
        raise JobActionError(f"only pending or delayed jobs can be cancelled (this one is {job.status})")
    if not cancel_run(job, "Cancelled by an admin"):
        raise JobActionError("the job started or finished meanwhile")


def cancel_run(job: Job, reason: str) -> bool:
    """Mark a not-yet-finished row cancelled, then drop its RQ job. False when the row moved on first."""
    if not state.mark_cancelled(job.id, reason):
        return False
    try:
        from rq.job import Job as RQJob

        from app.redis_connection import get_redis

        RQJob.fetch(job.rq_job_id, connection=get_redis()).cancel()
    except Exception:  # best effort: the runner skips cancelled rows anyway
        pass
    return True

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

from peewee import fn

from app.db import database
from app.jobs.held_events import fenced_events_sql
from app.models import Job, JobStatus, status_values, utcnow
from app.redaction import redact, redact_text

_MAX_TRACE = 20_000
_TERMINAL = status_values(JobStatus.TERMINAL)
_WAITING = tuple(status_values(JobStatus.WAITING))  # three parameters of _MARK_ACTIVE

# The two writes every run makes are pre-built SQL: Peewee's query building costs as much as the
# round trip itself (bench/throughput.py).
# A run starts from a waiting row, or takes over an active row whose lease expired (its run died
# and the sweep has not declared it yet). It writes its fencing token and the first heartbeat.
_MARK_ACTIVE = ("UPDATE jobs SET status = {p}, attempts = attempts + CASE WHEN polling THEN 0 ELSE 1 END, "
                "polling = {p}, started_at = {p}, updated_at = {p}, run_token = {p}, heartbeat_at = {p} "
                "WHERE id = {p} AND (status IN ({p}, {p}, {p}) OR (status = {p} AND heartbeat_at < {p}))")
# Only the run that holds the row completes it: status must be `active` AND run_token this run's token.
# Refused (0 rows): a row already finished (completed, failed, cancelled) or waiting again (pending,
# delayed for a retry or a poll, stuck), and an active row a newer run took over (token replaced). So a
# late or repeated completion never turns a failed or cancelled job into a completed one, nor completes
# a run that a sweep declared dead.
_MARK_COMPLETED = ("UPDATE jobs SET status = {p}, result = {p}, error_message = NULL, completed_at = {p}, "
                   "updated_at = {p}, run_token = NULL WHERE id = {p} AND status = {p} AND run_token = {p}")
_RENEW_LEASE = "UPDATE jobs SET heartbeat_at = {p} WHERE id = {p} AND status = {p} AND run_token = {p}"

@lru_cache(maxsize=16)
def _sql(template: str, param: str) -> str:
    return template.format(p=param)


def _execute(template: str, params: tuple) -> int:
    db = database.obj
    return db.execute_sql(_sql(template, db.param), params).rowcount


def _uuid_param(value: Any) -> str:
    """The form Peewee's UUIDField stores: 32 hex digits (SQLite text; PostgreSQL's uuid accepts it)."""
    return (value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))).hex


def _secrets() -> tuple[str, ...]:
    from app.config import get_settings

    return get_settings().secret_values()


_JOB_COLUMNS = ("INSERT INTO jobs (id, created_at, updated_at, request_id, rq_job_id, type, status, priority, "
                "attempts, max_attempts, payload, scheduled_job_id, run_at, polls, polling) ")
_INSERT_JOB = _JOB_COLUMNS + "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, 0, {p}, {p}, {p}, {p}, 0, {p})"
# Inside a run (a processor chaining the next step) the row lands only while the run holds its job: the fence in
# the insert's own statement. INSERT ... SELECT needs typed values on PostgreSQL; SQLite takes them as they are.
_RUN_HOLDS_JOB = " WHERE EXISTS (SELECT 1 FROM jobs WHERE id = {p} AND run_token = {p} AND status = 'active')"
_INSERT_JOB_FENCED_PG = (_JOB_COLUMNS + "SELECT %s::uuid, %s::timestamp, %s::timestamp, %s::uuid, %s, %s, %s, %s, 0, "
                         "%s, %s::jsonb, %s::uuid, %s::timestamp, 0, %s" + _RUN_HOLDS_JOB.format(p="%s"))
_INSERT_JOB_FENCED_SQLITE = (_JOB_COLUMNS + "SELECT ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, 0, ?"
                             + _RUN_HOLDS_JOB.format(p="?"))


def insert_job_row(*, job_id: uuid.UUID, job_type: str, payload: dict, priority: int, max_attempts: int,
                   request_id: Any, rq_job_id: str, run_at: datetime | None, scheduled_job_id: Any = None,
                   fence: tuple[str, str] | None = None, polling: bool = False) -> bool:
    """The row every run starts with: `pending`, or `delayed` when it is due later (`polling`: a waiting poll,
    whose first poll is a poll batch's, app/jobs/poll_batches.py; `run_at` is then required).

    `fence`: (job id, token) of the run adding it (fence.write_fence): the row is inserted only while that run
    still holds its job, in the same statement. False when it did not (nothing written).
    The payload is stored whole: it is what a retry or a recovery runs again (a release link's tracker
    passkey included); it is redacted where it is shown (the job page's pretty_json), like everything else."""
    status = JobStatus.DELAYED if run_at is not None else JobStatus.PENDING
    now = utcnow()
    params = (_uuid_param(job_id), now, now, _uuid_param(request_id) if request_id else None, rq_job_id, job_type,
              status.value, priority, max_attempts, json.dumps(payload, allow_nan=False),
              _uuid_param(scheduled_job_id) if scheduled_job_id else None, run_at, polling)
    if fence is None:
        return _execute(_INSERT_JOB, params) == 1
    db = database.obj
    sql = _INSERT_JOB_FENCED_SQLITE if db.param == "?" else _INSERT_JOB_FENCED_PG
    return db.execute_sql(sql, (*params, _uuid_param(fence[0]), fence[1])).rowcount == 1


def mark_enqueue_failed(job_id: Any, error: BaseException) -> None:
    Job.update(status=JobStatus.FAILED.value, error_message=redact_text(f"Could not enqueue: {error}", _secrets()),
               completed_at=utcnow(), updated_at=utcnow()).where(Job.id == job_id).execute()


def mark_active(job_id: Any, token: str, lease_seconds: float) -> bool:
    """A run starts: status active, attempts + 1, this run's fencing token and first heartbeat.

    False when the job must not run: cancelled, finished, unknown, or active under a live lease."""
    now = utcnow()
    lease_cutoff = now - timedelta(seconds=lease_seconds)
    return _execute(_MARK_ACTIVE, (JobStatus.ACTIVE.value, False, now, now, token, now, _uuid_param(job_id), *_WAITING,
                                   JobStatus.ACTIVE.value, lease_cutoff)) == 1


def renew_lease(job_id: Any, token: str) -> bool:
    """The running run's heartbeat. False when the run no longer holds the row (fenced out)."""
    return _execute(_RENEW_LEASE, (utcnow(), _uuid_param(job_id), JobStatus.ACTIVE.value, token)) == 1


def run_is_current(job_id: Any, token: str) -> bool:
    return Job.select().where((Job.id == job_id) & (Job.status == JobStatus.ACTIVE.value)
                              & (Job.run_token == token)).exists()


def mark_waiting_for_poll(job_id: Any, delay: float, payload: dict, token: str) -> bool:
    """A polling job (monitor_download) ends this run and comes back in `delay` s: `delayed`, same row,
    no attempt spent; its payload carries the poll state forward."""
    now = utcnow()
    return (
        Job.update(
            status=JobStatus.DELAYED.value,
            polling=True,
            polls=Job.polls + 1,
            payload=payload,
            run_at=now + timedelta(seconds=delay),
            error_message=None,
            updated_at=now,
            run_token=None,
        )
        .where((Job.id == job_id) & (Job.status == JobStatus.ACTIVE.value) & (Job.run_token == token))
        .execute()
    ) == 1


def mark_completed(job_id: Any, result: Any, token: str, events: list[tuple] | None = None) -> bool:
    """The run that holds `token` completes the row. `events`: the info events the run held back
    (app/jobs/held_events.py), written first under the same fence; on PostgreSQL in the same round trip."""
    now = utcnow()
    stored = json.dumps(redact(result, _secrets()), allow_nan=False) if result is not None else None
    params: tuple = (JobStatus.COMPLETED.value, stored, now, now, _uuid_param(job_id), JobStatus.ACTIVE.value, token)
    if not events:
        return _execute(_MARK_COMPLETED, params) == 1
    db = database.obj
    event_params = (*(value for row in events for value in row), _uuid_param(job_id), token)
    if db.param == "?":  # SQLite runs one statement per call
        db.execute_sql(fenced_events_sql(len(events), postgres=False), event_params)
        return _execute(_MARK_COMPLETED, params) == 1
    sql = fenced_events_sql(len(events), postgres=True) + "; " + _sql(_MARK_COMPLETED, db.param)
    return db.execute_sql(sql, (*event_params, *params)).rowcount == 1  # the UPDATE's count: the last statement


def mark_attempt_failed(job_id: Any, *, error: str, trace: str | None, final: bool, retry_in: float | None,
                        token: str | None = None, abandoned_before: datetime | None = None) -> bool:
    """Record a failed run; the row's token is cleared, so the failed run can write nothing more.

    Which run may record it:
    - `token`: the run itself (an exception in the processor, a timeout): the row must hold the token;
    - `abandoned_before`: a sweep declaring a run dead (worker killed, paused past its lease, lost with
      Redis): the row must be active with a heartbeat older than that instant;
    - neither: the run failed before it started (e.g. the database was down): the row must be waiting.
    final: no attempt remains → `failed`. Otherwise → `stuck` when the run was abandoned, else
    `delayed` until the retry is due in `retry_in` seconds.
    """
    now = utcnow()
    secrets = _secrets()
    values: dict[str, Any] = {
        "error_message": redact_text(error, secrets)[:5000],
        "stack_trace": redact_text(trace, secrets)[-_MAX_TRACE:] if trace else None,
        "updated_at": now,
        "run_token": None,
    }
    if final:
        values.update(status=JobStatus.FAILED.value, completed_at=now)
    else:
        values.update(status=(JobStatus.STUCK if abandoned_before else JobStatus.DELAYED).value,
                      run_at=now + timedelta(seconds=retry_in or 0))
    if token is not None:
        owner = (Job.status == JobStatus.ACTIVE.value) & (Job.run_token == token)
    elif abandoned_before is not None:
        owner = (Job.status == JobStatus.ACTIVE.value) & (
            fn.COALESCE(Job.heartbeat_at, Job.started_at) < abandoned_before
        )
    else:
        owner = Job.status.in_(_WAITING)
    return Job.update(**values).where((Job.id == job_id) & owner).execute() == 1


def mark_cancelled(job_id: Any, reason: str) -> bool:
    now = utcnow()
    return (Job.update(status=JobStatus.CANCELLED.value, error_message=reason, completed_at=now, updated_at=now,
                       run_token=None)
            .where((Job.id == job_id) & Job.status.not_in(_TERMINAL))
            .execute()) == 1


def mark_stopped(job_id: Any, reason: str) -> bool:
    """An admin stops a running job: active → cancelled, and its token cleared, so nothing the run writes
    afterwards lands (app/jobs/fence.py). False when the row is not active."""
    now = utcnow()
    return (Job.update(status=JobStatus.CANCELLED.value, error_message=reason, completed_at=now, updated_at=now,
                       run_token=None)
            .where((Job.id == job_id) & (Job.status == JobStatus.ACTIVE.value))
            .execute()) == 1


def reset_for_requeue(job_id: Any) -> bool:
    """A pending/delayed/stuck row whose Redis job was lost is enqueued again (requeue_lost_jobs in
    app/jobs/recovery.py)."""
    return (Job.update(status=JobStatus.PENDING.value, updated_at=utcnow())
            .where((Job.id == job_id) & Job.status.in_(list(_WAITING)))
            .execute()) == 1


# --- poll batches (app/jobs/poll_batches.py, workers/poll_batch.py; PostgreSQL only) ---------------------------
# A batch claims many waiting polls in one statement, each row with its own fresh token, and writes them back in
# one statement, each row fenced by its own token. `polling` stays true while a batch holds a row, so a batch
# lost mid-run (worker killed) costs its downloads no attempt: the lease sweep's re-run starts as a poll.

def claim_polls(tokens: dict[str, str], due_before: datetime) -> list[dict[str, Any]]:
    """Claim the waiting polls among `tokens` (job id → a fresh token for it) that are due (run_at <=
    due_before): delayed + polling → active, token, heartbeat, no attempt spent. Rows cancelled, not yet due
    (a duplicate entry), or taken by another run are left alone. Returns the rows claimed: id, token, payload,
    priority, attempts, max_attempts."""
    if not tokens:
        return []
    now = utcnow()
    values = ", ".join(["(%s::uuid, %s)"] * len(tokens))
    sql = (f"UPDATE jobs SET status = %s, run_token = v.token, heartbeat_at = %s, started_at = %s, updated_at = %s "
           f"FROM (VALUES {values}) AS v(id, token) WHERE jobs.id = v.id AND jobs.status = %s AND jobs.polling "
           f"AND jobs.run_at <= %s RETURNING jobs.id, jobs.run_token, jobs.payload, jobs.priority, jobs.attempts, "
           f"jobs.max_attempts")
    params = [
        JobStatus.ACTIVE.value,
        now,
        now,
        now,
        *(x for pair in tokens.items() for x in pair),
        JobStatus.DELAYED.value,
        due_before,
    ]
    rows = database.obj.execute_sql(sql, params).fetchall()
    return [{"id": str(job_id), "token": token,
             "payload": json.loads(payload) if isinstance(payload, str) else payload,
             "priority": priority, "attempts": attempts, "max_attempts": max_attempts}
            for job_id, token, payload, priority, attempts, max_attempts in rows]


def mark_polls_waiting(polls: list[tuple[str, str, float, dict]]) -> list[str]:
    """mark_waiting_for_poll for many runs of a batch in one statement: each (job id, token, delay, payload)
    row goes back to `delayed` + `polling`, polls + 1, run_at now + delay, only while it is still active with
    that token; a first poll (app/jobs/service.add_job's `poll_batched`) counts its attempt, as its own first run
    would. Returns the ids written (a row missing was fenced out: stopped, or swept and re-run)."""
    if not polls:
        return []
    now = utcnow()
    values = ", ".join(["(%s::uuid, %s, %s::timestamp, %s::jsonb)"] * len(polls))
    sql = (f"UPDATE jobs SET status = %s, polling = TRUE, polls = jobs.polls + 1, payload = v.payload, "
           f"run_at = v.run_at, error_message = NULL, updated_at = %s, run_token = NULL, "
           f"attempts = GREATEST(jobs.attempts, 1) "
           f"FROM (VALUES {values}) AS v(id, token, run_at, payload) "
           f"WHERE jobs.id = v.id AND jobs.status = %s AND jobs.run_token = v.token RETURNING jobs.id")
    params: list[Any] = [JobStatus.DELAYED.value, now]
    for job_id, token, delay, payload in polls:
        params += [job_id, token, now + timedelta(seconds=delay), json.dumps(payload, allow_nan=False)]
    params.append(JobStatus.ACTIVE.value)
    return [str(row[0]) for row in database.obj.execute_sql(sql, params).fetchall()]


def release_polls(claimed: list[tuple[str, str]]) -> list[str]:
    """A batch hands (job id, token) rows back for their own ordinary run, queued at once: `pending` (token
    cleared; no poll counted). Pending, not delayed: a waiting poll is delayed + polling with no RQ job of its
    own, and the due-set repair must never add a row that has one (it would be polled twice); a pending row
    whose RQ job Redis lost is requeue_lost_jobs'. A later poll keeps `polling` (its run spends no attempt); a
    first poll (no attempt yet) does not: its run is its first attempt, as if it had never been batched.
    Returns the ids released (a row missing was fenced out)."""
    if not claimed:
        return []
    now = utcnow()
    values = ", ".join(["(%s::uuid, %s)"] * len(claimed))
    sql = (f"UPDATE jobs SET status = %s, polling = jobs.attempts > 0, run_at = %s, updated_at = %s, "
           f"run_token = NULL FROM (VALUES {values}) AS v(id, token) "
           f"WHERE jobs.id = v.id AND jobs.status = %s AND jobs.run_token = v.token RETURNING jobs.id")
    params = [JobStatus.PENDING.value, now, now, *(x for pair in claimed for x in pair), JobStatus.ACTIVE.value]
    return [str(row[0]) for row in database.obj.execute_sql(sql, params).fetchall()]

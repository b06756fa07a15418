"""Run fencing and the run's lease in the database.

Every run of a job starts with `begin()`: it writes a fresh token into the jobs row (status active,
heartbeat now). The token is the run's right to write: completing, failing, rescheduling the row,
moving its request, logging its events and starting the next step all require that the row still
holds it. A run that lost its lease (worker paused past the lease, partitioned, or declared dead
while it was only slow) finds the token replaced or cleared and its writes refused, the way Bull's
lock token fences a stalled job.

While a run is current, a daemon thread renews `jobs.heartbeat_at` every third of the lease. The
lease lives in PostgreSQL, the record of truth, so a run lost with Redis (restart without
persistence) is still noticed: the scheduler's lease sweep finds active rows whose heartbeat is
older than JOB_HEARTBEAT_TTL (app/jobs/recovery.py).

One run at a time per process (RQ workers run one job at a time): the current run is module state
(app/jobs/current_run.py), read by the callbacks RQ calls after the job, in the same process. It starts with
`begin` and ends with `end`, the one way a run ends (its held events: app/jobs/held_events.py).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, NoReturn

import peewee

from app.config import get_settings
from app.jobs import current_run, held_events, state
from app.jobs.current_run import LeaseLost, Run, RunStopped, checkpoint, current, current_for, request_stop
from app.jobs.held_events import HOLD_SECONDS, write_held_events
from app.models import Job

log = logging.getLogger(__name__)

__all__ = ["LeaseLost", "Run", "RunStopped", "begin", "checkpoint", "current", "current_for", "end", "ensure_current",
           "holds_lease", "insert_if_holding", "lease_lost", "lease_seconds", "lease_unconfirmed", "request_stop",
           "write_fence"]

_lease_thread: threading.Thread | None = None


def lease_seconds() -> int:
    return get_settings().job_heartbeat_ttl


def begin(job_id: Any) -> Run | None:
    """Start a run: mark the row active with a new token. None when the job must not run
    (cancelled, finished, unknown, or another run holds a live lease)."""
    token = uuid.uuid4().hex
    if not state.mark_active(job_id, token, lease_seconds()):
        return None
    run = Run(str(job_id), token)
    current_run.set_current(run)
    _ensure_lease_thread()
    return run


def end(job_id: Any = None, *, keep_events: bool = False, lost: bool = False) -> Run | None:
    """The one way a run ends: the worker is done with it (its callbacks run now, or have run). Its lease is no
    longer renewed and the writes of this process are no longer fenced by it; what it still holds of its events
    (app/jobs/held_events.py) is written now, fenced, or with `keep_events` left for the caller's last write
    (the completion takes them: `held_events.take_held_events`); with `lost` (the run found it lost its job) they
    are dropped. With `job_id`, only a run of that job is ended. Returns the run ended, or None.

    Called by the callbacks (on_success before the completion, on_failure before the failure is recorded), by
    the runner before a poll's reschedule, and by the worker after every job (the catch-all)."""
    run = current_run.current() if job_id is None else current_run.current_for(job_id)
    if run is None:
        return None
    current_run.set_current(None)
    run.lost = run.lost or lost
    if not keep_events:
        held_events.flush_at_end(run)
    return run


def lease_unconfirmed(now: float | None = None) -> bool:
    """The current run lost its lease, or could not write it for a whole lease period (PostgreSQL
    unreachable from this host while Redis is not): the scheduler sees it expired. The worker then stops
    renewing RQ's side of the lease too, so that RQ's entry lapses and the job is retried elsewhere; a run
    still beating in Redis would hold its job for as long as the cut lasts. False outside a run."""
    run = current_run.current()
    if run is None:
        return False
    return run.lost or (time.monotonic() if now is None else now) - run.confirmed > lease_seconds()


def ensure_current() -> None:
    """Raise LeaseLost when the current run's token is stale (no-op outside a run).

    Call before a side effect outside the database that a successor must not see twice."""
    run = current_run.current()
    if run is None:
        return
    if run.lost or not state.run_is_current(run.job_id, run.token):
        lease_lost(run)


def write_fence() -> tuple[str, str] | None:
    """(job id, token) of the current run, for a write that carries the fence in its own statement (add_job's
    insert: `state.insert_job_row`); None outside a run. LeaseLost when the run already knows it lost its lease.
    A write refused by the fence calls `lease_lost`."""
    run = current_run.current()
    if run is None:
        return None
    if run.lost:
        lease_lost(run)
    return run.job_id, run.token


def lease_lost(run: Run | None = None) -> NoReturn:
    """The run (by default the current one) found its token stale: mark it lost and raise LeaseLost."""
    run = run or current_run.current()
    if run is not None:
        run.lost = True
    raise LeaseLost(f"job {run.job_id if run else '?'}: this run lost its lease; another run owns the job")


def holds_lease() -> Any:
    """The fence as a SQL condition, for the WHERE of the write it guards (checked in the same statement):
    inside a run, the run's job row is still active with this run's token; outside a run, true."""
    run = current_run.current()
    if run is None:
        return peewee.SQL("1 = 1")
    return peewee.fn.EXISTS(Job.select(peewee.SQL("1")).where(
        (Job.id == run.job_id) & (Job.run_token == run.token) & (Job.status == "active")))


def insert_if_holding(model: Any, values: dict[str, Any], *, ignore_conflict: bool = False) -> bool:
    """INSERT one `model` row from `values` (every column it needs, defaults included), fenced: inside a run,
    an INSERT ... SELECT from the run's own job row, so the row lands only while the run holds its lease, in
    the same statement. False when nothing was inserted (fenced out, or a conflict ignored)."""
    run = current_run.current()
    if run is None:
        query = model.insert(**values)
    else:
        fields = [model._meta.fields[name] for name in values]
        constants = [peewee.Value(value, converter=field.db_value) for field, value in zip(fields, values.values(),
                                                                                          strict=True)]
        query = model.insert_from(Job.select(*constants).where(
            (Job.id == run.job_id) & (Job.run_token == run.token) & (Job.status == "active")), fields)
    if ignore_conflict:
        query = query.on_conflict_ignore()
    cursor = query.execute()
    return _inserted(cursor)


def _inserted(result: Any) -> bool:
    """Whether an insert query's execute() inserted a row (Peewee returns the new key, a row count or a cursor,
    by database and query shape)."""
    if hasattr(result, "rowcount"):
        return bool(result.rowcount)
    return bool(result)


def _ensure_lease_thread() -> None:
    global _lease_thread
    if _lease_thread is None or not _lease_thread.is_alive():  # threads do not survive a fork
        _lease_thread = threading.Thread(target=_renew_forever, daemon=True, name="job-lease")
        _lease_thread.start()


def _renew_forever() -> None:
    interval = max(lease_seconds() / 3, 0.5)
    while True:
        # A short fixed tick (a few wakeups a second per worker, whatever the job rate) rather than a
        # wakeup per job: held events of a long run show within about a second, at no per-job cost.
        time.sleep(HOLD_SECONDS)
        run = current_run.current()
        if run is None or run.lost:
            continue
        if run.held_events and run.age() >= HOLD_SECONDS:
            try:
                write_held_events(run)
            except Exception as exc:
                log.warning("job %s: could not write held events (%s)", run.job_id, type(exc).__name__)
        if time.monotonic() - run.renewed < interval:
            continue
        run.renewed = time.monotonic()
        try:
            if state.renew_lease(run.job_id, run.token):
                run.confirmed = time.monotonic()
            else:
                run.lost = True
                log.warning("job %s: lease lost (another run owns it now); this run's writes will be refused",
                            run.job_id)
        except Exception as exc:  # database briefly down: the next beat tries again
            log.warning("job %s: could not renew the lease (%s)", run.job_id, type(exc).__name__)

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

One run at a time per process (RQ workers run one job at a time), so the current run is module
state, read by the callbacks RQ calls after the job, in the same process.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """This run's token is no longer the row's: another run owns the job now; stop writing."""


class RunStopped(BaseException):
    """An admin stopped this run (app/jobs/stopping.py): raised at the run's next checkpoint.

    A BaseException, like KeyboardInterrupt, so a processor's `except Exception` around a step does not
    swallow it; RQ still records it as the run's failure, and the callbacks write nothing for it (the row
    is already cancelled and its token cleared)."""


@dataclass
class Run:
    job_id: str
    token: str
    lost: bool = False
    stopped: bool = False  # an admin's Stop reached this process: the next checkpoint raises RunStopped
    started: float = field(default_factory=time.monotonic)
    # info events held back to be written with the run's completion (app/jobs/logger.py); the lock
    # serialises their writers (the run's thread and the lease thread, which writes them once the run
    # is older than the hold time, so a long run's events still show within a second)
    held_events: list[tuple] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    renewed: float = field(default_factory=time.monotonic)  # mark_active wrote the first heartbeat
    confirmed: float = field(default_factory=time.monotonic)  # when the lease was last written (monotonic)

    def age(self) -> float:
        return time.monotonic() - self.started


_current: Run | None = None
_lease_thread: threading.Thread | None = None


def lease_seconds() -> int:
    from app.config import get_settings

    return get_settings().job_heartbeat_ttl


def begin(job_id: Any) -> Run | None:
    """Start a run: mark the row active with a new token. None when the job must not run
    (cancelled, finished, unknown, or another run holds a live lease)."""
    from app.jobs import state

    global _current
    token = uuid.uuid4().hex
    if not state.mark_active(job_id, token, lease_seconds()):
        return None
    _current = Run(str(job_id), token)
    _ensure_lease_thread()
    return _current


def end() -> None:
    """The worker is done with the run (its callbacks have run): stop renewing its lease."""
    global _current
    _current = None


def current() -> Run | None:
    return _current


def current_for(job_id: Any) -> Run | None:
    """The current run if it is a run of `job_id`."""
    run = _current
    return run if run is not None and run.job_id == str(job_id) else None


def request_stop(job_id: Any) -> bool:
    """Mark the current run of `job_id` stopped (called from the worker's command thread). False when this
    process is not running that job."""
    run = current_for(job_id)
    if run is None:
        return False
    run.stopped = True
    return True


def checkpoint() -> None:
    """Raise RunStopped when an admin stopped the current run (no I/O: a flag the worker's command thread
    sets). Processors call it in their loops; every JobLogger call of a run is one too."""
    run = _current
    if run is not None and run.stopped:
        raise RunStopped(f"job {run.job_id}: stopped by an admin")


def lease_unconfirmed(now: float | None = None) -> bool:
    """The current run lost its lease, or could not write it for a whole lease period (PostgreSQL
    unreachable from this host while Redis is not): the scheduler sees it expired. The worker then stops
    renewing RQ's side of the lease too, so that RQ's entry lapses and the job is retried elsewhere; a run
    still beating in Redis would hold its job for as long as the cut lasts. False outside a run."""
    run = _current
    if run is None:
        return False
    return run.lost or (time.monotonic() if now is None else now) - run.confirmed > lease_seconds()


def ensure_current() -> None:
    """Raise LeaseLost when the current run's token is stale (no-op outside a run).

    Call before a side effect outside the database that a successor must not see twice."""
    from app.jobs import state

    run = _current
    if run is None:
        return
    if run.lost or not state.run_is_current(run.job_id, run.token):
        run.lost = True
        raise LeaseLost(f"job {run.job_id}: this run lost its lease; another run owns the job")


def holds_lease() -> Any:
    """The fence as a SQL condition, for the WHERE of the write it guards (checked in the same statement):
    inside a run, the run's job row is still active with this run's token; outside a run, true."""
    import peewee

    from app.models import Job

    run = _current
    if run is None:
        return peewee.SQL("1 = 1")
    return peewee.fn.EXISTS(Job.select(peewee.SQL("1")).where(
        (Job.id == run.job_id) & (Job.run_token == run.token) & (Job.status == "active")))


def insert_if_holding(model: Any, values: dict[str, Any], *, ignore_conflict: bool = False) -> bool:
    """INSERT one `model` row from `values` (every column it needs, defaults included), fenced: inside a run,
    an INSERT ... SELECT from the run's own job row, so the row lands only while the run holds its lease, in
    the same statement. False when nothing was inserted (fenced out, or a conflict ignored)."""
    import peewee

    from app.models import Job

    run = _current
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
    from app.jobs import state
    from app.jobs.logger import HOLD_SECONDS, write_held_events

    interval = max(lease_seconds() / 3, 0.5)
    while True:
        # A short fixed tick (a few wakeups a second per worker, whatever the job rate) rather than a
        # wakeup per job: held events of a long run show within about a second, at no per-job cost.
        time.sleep(HOLD_SECONDS)
        run = _current
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

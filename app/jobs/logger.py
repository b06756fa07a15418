"""JobLogger: per-job structured events in job_events, mirrored to Python logging.

Usage in a processor::

    log = create_job_logger(payload["jobId"], "OrganizeFiles")
    log.info("Processing request", {"requestId": request_id})

A logger never raises into the job because of its own failures: when the insert fails (database
down, bad connection) the event is reported on stderr and the job goes on. Every call of a running
job's logger is a checkpoint, though: once an admin stopped the run it raises fence.RunStopped.
"""
from __future__ import annotations

import json
import logging
import sys
import uuid
from typing import Any

from app.jobs.redact import redact, redact_text

EVENT_LEVELS = ("info", "warn", "error")  # job_events.level; the logs page filters by them
# The events are the job's record (job_events). Their mirror in the process log is for trouble: info events
# are debug there (at info a job writes one line, when it ends: workers/worker.py); warnings and errors stay.
_PY_LEVELS = {"info": logging.DEBUG, "warn": logging.WARNING, "error": logging.ERROR}
_MAX_MESSAGE = 10_000


def _known_secrets() -> tuple[str, ...]:
    try:
        from app.config import get_settings

        return get_settings().secret_values()
    except Exception:  # settings errors must not break logging
        return ()


class JobLogger:
    def __init__(self, job_id: str | None, context: str, outside_run: bool = False):
        self.job_id = str(job_id) if job_id else None
        # outside_run: events about the job written by someone else than its run (an admin's Stop), even in a
        # process whose current run is that job's: never fenced, never a checkpoint
        self.outside_run = outside_run
        self.context = context
        self._log = logging.getLogger(f"jobs.{context}")

    def info(self, message: str, metadata: Any = None) -> None:
        self._write("info", message, metadata)

    def warning(self, message: str, metadata: Any = None) -> None:
        """An event at level `warn` (the level's stored name, as in the original's JobLogger)."""
        self._write("warn", message, metadata)

    def error(self, message: str, metadata: Any = None) -> None:
        self._write("error", message, metadata)

    def child(self, context: str) -> JobLogger:
        """A logger for a helper (e.g. FileOrganizer) that writes to the same job."""
        return JobLogger(self.job_id, context)

    def _write(self, level: str, message: str, metadata: Any) -> None:
        from app.jobs import fence

        if self.job_id and not self.outside_run and fence.current_for(self.job_id) is not None:
            fence.checkpoint()
        secrets = _known_secrets()
        text = redact_text(str(message), secrets)[:_MAX_MESSAGE]
        safe_metadata = redact(metadata, secrets) if metadata is not None else None
        py_level = _PY_LEVELS[level]
        if self._log.isEnabledFor(py_level):
            self._log.log(py_level, "[%s] %s%s", self.context, text,
                          f" {safe_metadata}" if safe_metadata is not None else "", extra={"job": self.job_id})
        if not self.job_id:
            return
        try:
            _insert_event(self.job_id, level, self.context, text, safe_metadata, fenced=not self.outside_run)
        except Exception as exc:  # never fail the job because its log could not be stored
            print(f"JobLogger: could not store event for job {self.job_id} ({type(exc).__name__}: "
                  f"{redact_text(str(exc), secrets)[:300]}): [{level}] [{self.context}] {text}", file=sys.stderr)


_INSERT_EVENT = ("INSERT INTO job_events (id, created_at, updated_at, job_id, level, context, message, metadata) "
                 "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})")


# A run's own events are fenced like its other writes (app/jobs/fence.py): stored only while the run
# holds its job. INSERT … SELECT needs typed values on PostgreSQL; SQLite takes them as they are.
_EVENT_COLUMNS = "INSERT INTO job_events (id, created_at, updated_at, job_id, level, context, message, metadata) "
_FENCE = "EXISTS (SELECT 1 FROM jobs WHERE id = {p} AND run_token = {p} AND status = 'active')"
_PG_ROW = "(%s, %s::timestamp, %s::timestamp, %s, %s, %s, %s, %s)"
_PG_SELECT = ("SELECT v.id::uuid, v.c, v.u, v.j::uuid, v.l, v.x, v.m, v.d::jsonb FROM (VALUES {rows}) "
              "AS v(id, c, u, j, l, x, m, d) WHERE ")

# A run's info events are held back while the run is young and written with its completion, in the same
# round trip (app/jobs/state.py mark_completed): a short job costs one statement instead of three.
# Warnings, errors and every event of a run older than this are written at once (with what was held).
HOLD_SECONDS = 0.5
_HOLD_MAX = 20


def fenced_events_sql(count: int, postgres: bool) -> str:
    """INSERT of `count` event rows of a run, refused unless the run still holds its job. Parameters:
    the rows' values (8 each), then the job id and the run's token."""
    if postgres:
        return _EVENT_COLUMNS + _PG_SELECT.format(rows=", ".join([_PG_ROW] * count)) + _FENCE.format(p="%s")
    rows = " UNION ALL ".join(["SELECT ?, ?, ?, ?, ?, ?, ?, ?"] * count)
    return _EVENT_COLUMNS + f"SELECT * FROM ({rows}) WHERE " + _FENCE.format(p="?")


def _insert_event(job_id: str, level: str, context: str, message: str, metadata: Any, fenced: bool = True) -> None:
    """One job_events row (pre-built SQL: this runs for every event of every job)."""
    from app.db import ensure_bound
    from app.jobs import fence
    from app.models import utcnow

    now = utcnow()
    encoded = json.dumps(metadata, allow_nan=False) if metadata is not None else None
    job_hex = uuid.UUID(job_id).hex
    params = (uuid.uuid4().hex, now, now, job_hex, level, context, message, encoded)
    run = fence.current_for(job_id) if fenced else None
    if run is None:
        db = ensure_bound()
        db.execute_sql(_INSERT_EVENT.format(p=db.param), params)
        return
    with run.lock:
        run.held_events.append(params)
        if level == "info" and len(run.held_events) < _HOLD_MAX and run.age() < HOLD_SECONDS:
            return  # the run's completion writes them, or the lease thread once the run is older
    write_held_events(run)


def write_held_events(run: Any) -> None:
    """Write the events a run holds back (fenced; dropped with a warning when the run lost its lease)."""
    from app.db import ensure_bound

    with run.lock:
        held, run.held_events = run.held_events, []
        if not held:
            return
        db = ensure_bound()
        postgres = db.param != "?"
        params = [value for row in held for value in row] + [held[0][3], run.token]
        stored = db.execute_sql(fenced_events_sql(len(held), postgres), params).rowcount
    if stored == 0:
        logging.getLogger(__name__).warning("job %s: %d event(s) of a run that lost its lease not stored",
                                            run.job_id, len(held))


def create_job_logger(job_id: str | None, context: str, outside_run: bool = False) -> JobLogger:
    """A JobLogger for `job_id` (None gives a logger that only mirrors to Python logging)."""
    return JobLogger(job_id, context, outside_run)

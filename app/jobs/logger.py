"""JobLogger: per-job structured events in job_events, mirrored to Python logging.

Usage in a processor::

    log = create_job_logger(payload["jobId"], "OrganizeFiles")
    log.info("Processing request", {"requestId": request_id})

A logger never raises into the job because of its own failures: when the insert fails (database
down, bad connection) the event is reported on stderr and the job goes on. Every call of a running
job's logger is a checkpoint, though: once an admin stopped the run it raises RunStopped
(app/jobs/current_run.py). A running job's own events are held back and written with its completion
(app/jobs/held_events.py).
"""
from __future__ import annotations

import json
import logging
import sys
import uuid
from typing import Any

from app.db import ensure_bound
from app.jobs import current_run, held_events
from app.models import utcnow
from app.redaction import redact, redact_text

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
        if self.job_id and not self.outside_run and current_run.current_for(self.job_id) is not None:
            current_run.checkpoint()
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


def _insert_event(job_id: str, level: str, context: str, message: str, metadata: Any, fenced: bool = True) -> None:
    """One job_events row (pre-built SQL: this runs for every event of every job); a run's own are held
    (app/jobs/held_events.py)."""
    now = utcnow()
    encoded = json.dumps(metadata, allow_nan=False) if metadata is not None else None
    job_hex = uuid.UUID(job_id).hex
    params = (uuid.uuid4().hex, now, now, job_hex, level, context, message, encoded)
    run = current_run.current_for(job_id) if fenced else None
    if run is None:
        db = ensure_bound()
        db.execute_sql(_INSERT_EVENT.format(p=db.param), params)
    elif not held_events.hold(run, level, params):
        held_events.write_held_events(run)


def create_job_logger(job_id: str | None, context: str, outside_run: bool = False) -> JobLogger:
    """A JobLogger for `job_id` (None gives a logger that only mirrors to Python logging)."""
    return JobLogger(job_id, context, outside_run)

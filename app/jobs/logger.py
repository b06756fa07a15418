"""JobLogger: per-job structured events in job_events, mirrored to Python logging.

Usage in a processor::

    log = create_job_logger(payload["jobId"], "OrganizeFiles")
    log.info("Processing request", {"requestId": request_id})

A logger never raises into the job: when the insert fails (database down, bad connection) the
event is reported on stderr and the job goes on.
"""
from __future__ import annotations

import json
import logging
import sys
import uuid
from typing import Any

from app.jobs.redact import redact, redact_text

LEVELS = ("info", "warn", "error")
_PY_LEVELS = {"info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_MAX_MESSAGE = 10_000


def _known_secrets() -> list[str]:
    try:
        from app.config import get_settings

        return get_settings().secret_values()
    except Exception:  # settings errors must not break logging
        return []


class JobLogger:
    def __init__(self, job_id: str | None, context: str):
        self.job_id = str(job_id) if job_id else None
        self.context = context
        self._log = logging.getLogger(f"jobs.{context}")

    def info(self, message: str, metadata: Any = None) -> None:
        self._write("info", message, metadata)

    def warn(self, message: str, metadata: Any = None) -> None:
        self._write("warn", message, metadata)

    warning = warn

    def error(self, message: str, metadata: Any = None) -> None:
        self._write("error", message, metadata)

    def child(self, context: str) -> "JobLogger":
        """A logger for a helper (e.g. FileOrganizer) that writes to the same job."""
        return JobLogger(self.job_id, context)

    def _write(self, level: str, message: str, metadata: Any) -> None:
        secrets = _known_secrets()
        text = redact_text(str(message), secrets)[:_MAX_MESSAGE]
        safe_metadata = redact(metadata, secrets) if metadata is not None else None
        self._log.log(_PY_LEVELS[level], "[%s] %s%s", self.context, text,
                      f" {safe_metadata}" if safe_metadata is not None else "")
        if not self.job_id:
            return
        try:
            _insert_event(self.job_id, level, self.context, text, safe_metadata)
        except Exception as exc:  # never fail the job because its log could not be stored
            print(f"JobLogger: could not store event for job {self.job_id} ({type(exc).__name__}: "
                  f"{redact_text(str(exc), secrets)[:300]}): [{level}] [{self.context}] {text}", file=sys.stderr)


_INSERT_EVENT = ("INSERT INTO job_events (id, created_at, updated_at, job_id, level, context, message, metadata) "
                 "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})")


# A run's own events are fenced like its other writes (app/jobs/fence.py): stored only while the run
# holds its job. INSERT … SELECT needs typed parameters on PostgreSQL; SQLite takes them as they are.
_INSERT_FENCED_EVENT = {
    "postgresql": ("INSERT INTO job_events (id, created_at, updated_at, job_id, level, context, message, metadata) "
                   "SELECT %s::uuid, %s::timestamp, %s::timestamp, %s::uuid, %s, %s, %s, %s::jsonb "
                   "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = %s::uuid AND run_token = %s AND status = 'active')"),
    "sqlite": ("INSERT INTO job_events (id, created_at, updated_at, job_id, level, context, message, metadata) "
               "SELECT ?, ?, ?, ?, ?, ?, ?, ? "
               "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ? AND run_token = ? AND status = 'active')"),
}


def _insert_event(job_id: str, level: str, context: str, message: str, metadata: Any) -> None:
    """One job_events row (pre-built SQL: this runs for every event of every job)."""
    from app.db import ensure_bound
    from app.jobs import fence
    from app.models import utcnow

    db = ensure_bound()
    now = utcnow()
    encoded = json.dumps(metadata, allow_nan=False) if metadata is not None else None
    job_hex = uuid.UUID(job_id).hex
    params = (uuid.uuid4().hex, now, now, job_hex, level, context, message, encoded)
    run = fence.current_for(job_id)
    if run is None:
        db.execute_sql(_INSERT_EVENT.format(p=db.param), params)
    elif db.execute_sql(_INSERT_FENCED_EVENT["sqlite" if db.param == "?" else "postgresql"],
                        (*params, job_hex, run.token)).rowcount == 0:
        logging.getLogger(__name__).warning("job %s: event of a run that lost its lease not stored: %s",
                                            job_id, message[:200])


def create_job_logger(job_id: str | None, context: str) -> JobLogger:
    """A JobLogger for `job_id` (None gives a logger that only mirrors to Python logging)."""
    return JobLogger(job_id, context)

"""cleanup_job_history: remove jobs and events older than JOB_HISTORY_DAYS (app/jobs/retention.py)."""
from __future__ import annotations

from app.config import get_settings
from app.jobs.logger import create_job_logger
from app.jobs.retention import cleanup_job_history
from app.jobs.types import JobKind
from workers.processors import register


@register(JobKind.CLEANUP_JOB_HISTORY)
def process_cleanup_job_history(payload: dict) -> dict:
    log = create_job_logger(payload["jobId"], "JobHistoryCleanup")
    days = int(payload.get("days") or get_settings().job_history_days)
    log.info(f"Removing finished jobs older than {days} days")
    outcome = cleanup_job_history(days)
    log.info(f"Removed {outcome['jobsDeleted']} jobs and {outcome['eventsDeleted']} events", outcome)
    return {"success": True, **outcome}

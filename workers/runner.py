"""The function every RQ job calls: mark the run active, then hand the payload to its processor."""
from __future__ import annotations

from typing import Any

from app.db import ensure_bound
from app.jobs import state
from app.jobs.errors import PermanentJobError
from workers import processors


def run_job(job_type: str, payload: dict) -> Any:
    ensure_bound()
    job_id = payload.get("jobId")
    if not job_id:
        raise PermanentJobError(f"{job_type}: payload has no jobId; jobs must be created through add_job")
    if not state.mark_active(job_id):
        # Cancelled (or already finished) while it waited in Redis, or its row is gone: do nothing.
        return {"skipped": True, "reason": "job is cancelled, finished or unknown in the database"}
    processor = processors.get(job_type)
    if processor is None:
        raise PermanentJobError(f"no processor is registered for job type {job_type!r}")
    return processor(payload)

"""noop: a diagnostic job that does nothing and logs two events (smoke tests and benchmarks)."""
from __future__ import annotations

from app.jobs.logger import create_job_logger
from app.jobs.types import JobKind
from workers.processors import register


@register(JobKind.NOOP)
def process_noop(payload: dict) -> dict:
    """Does nothing but log two events: the cheapest full trip through the job system."""
    log = create_job_logger(payload["jobId"], "Noop")
    log.info("Started")
    log.info("Finished")
    return {"success": True}

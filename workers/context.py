"""What a processor may ask of, or hand back to, the runner."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rq import get_current_job

from app.audiobook_requests.state import RequestStatus, transition
from app.integrations.errors import PermanentServiceError
from app.jobs.logger import JobLogger


@dataclass
class Reschedule:
    """Returned by a polling processor: run this job again in `delay` seconds with `state` merged into its payload."""

    delay: float
    state: dict[str, Any] = field(default_factory=dict)


def is_last_attempt() -> bool:
    """Inside a processor: True when a failure now would be final (no retry left)."""
    rq_job = get_current_job()
    return rq_job is None or not rq_job.retries_left


def fail_request_if_final(request_id: Any, exc: Exception, log: JobLogger, step: str) -> bool:
    """A request's step (search, download) failed on a service: when that ends the step (a permanent error,
    or the job's last attempt) the request fails with the reason. Logs "<step> failed: …" either way and
    returns whether it was final; the caller re-raises, so the job's retry or failure follows."""
    final = isinstance(exc, PermanentServiceError) or is_last_attempt()
    if final:
        transition(request_id, RequestStatus.FAILED, error_message=str(exc))
    log.error(f"{step} failed: {exc}" + ("" if final else " (will retry)"))
    return final

"""What a job's final failure means for its request: the step it worked on failed, so the request is
`failed` with the job's error as the reason, whatever ended the job (an exception, a timeout, a worker
killed on the last attempt, an abandoned run with no attempts left)."""
from __future__ import annotations

from typing import Any

from app.audiobook_requests.pipeline import STEP_STATUS
from app.audiobook_requests.state import IN_PROGRESS, RequestStatus, transition


def fail_request_for_job(request_id: Any, job_type: str, reason: str) -> bool:
    """Move the request to `failed` if it is still in the in-progress status of `job_type`'s step.

    A request that moved on (cancelled, a later step, a retry elsewhere) is left alone. Returns True
    when the request was failed now.
    """
    step = STEP_STATUS.get(job_type)
    if step is None or request_id is None:
        return False
    sources = tuple(s for s in (RequestStatus.PENDING, step) if s in IN_PROGRESS)
    return transition(request_id, RequestStatus.FAILED, only_from=sources, error_message=reason[:2000])

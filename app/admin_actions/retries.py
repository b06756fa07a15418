"""An admin's retry of a failed job, and "requeue failed" of a whole type: actions that span the job system and
the requests (a step's job re-enters its request's status first), so they live above both."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.audiobook_requests import state as request_state
from app.audiobook_requests.job_retries import requeueable_failed
from app.audiobook_requests.pipeline import STEP_STATUS
from app.jobs.errors import EnqueueFailed, JobSystemError
from app.jobs.service import JobActionError, add_job, get_job
from app.models import Job, JobStatus, Request, utcnow


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def retry_job(job_id: Any) -> str:
    """Run a failed job again: a new run through add_job, with the same type, payload and request.

    Only `failed` rows (a `stuck` one is retried by RQ itself), and each only once: the row is claimed
    with a conditional UPDATE (retried_at IS NULL) before add_job and then points at the new run
    (retry_job_id), so a double click or a second "requeue failed" never starts two runs. A pipeline
    step's job first moves its request from `failed` back into that step's status. Raises
    JobActionError (404 unknown, 409 refused); a claim whose new run could not start is released.
    """
    job = get_job(job_id)
    if job is None:
        raise JobActionError("job not found", status=404)
    if job.status not in JobStatus.RETRYABLE:
        raise JobActionError(_not_retryable_reason(job))
    if not job.can_retry or not _claim_for_retry(job.id):
        raise _already_retried(job.id)
    try:
        new_id = _start_retry_run(job)
    except BaseException:
        _release_retry_claim(job.id)
        raise
    Job.update(retry_job_id=new_id, updated_at=utcnow()).where(Job.id == job.id).execute()
    return new_id


def _not_retryable_reason(job: Job) -> str:
    if job.status == JobStatus.STUCK.value:
        return "only failed jobs can be retried (this one is stuck: RQ retries it by itself)"
    return f"only failed jobs can be retried (this one is {job.status})"


def _claim_for_retry(job_id: Any) -> bool:
    """Claim a failed row for one retry; False when another retry claimed it first."""
    return (Job.update(retried_at=utcnow(), updated_at=utcnow())
            .where((Job.id == job_id) & Job.retryable()).execute()) == 1


def _release_retry_claim(job_id: Any) -> None:
    Job.update(retried_at=None, retry_job_id=None).where(Job.id == job_id).execute()


def _already_retried(job_id: Any) -> JobActionError:
    job = Job.get_by_id(job_id)
    if job.retry_job_id is None:
        return JobActionError("a retry of this job is being started right now")
    return JobActionError(f"already retried: run {job.retry_job_id} was started {_iso(job.retried_at)}",
                          retryJobId=str(job.retry_job_id))


def _start_retry_run(job: Job) -> str:
    """The new run; a step of a request re-enters the step's status first (and goes back to failed when
    the run could not be added)."""
    step = STEP_STATUS.get(job.type)
    reentered = job.request_id is not None and step is not None
    if reentered and not request_state.reenter_step_for_retry(job.request_id, job.type):
        current = Request.get_or_none(Request.id == job.request_id)
        status = current.status if current else "gone"
        raise JobActionError(f"its request is {status}, not failed: a {job.type} job is retried only while its "
                             f"request is failed")
    payload = {k: v for k, v in (job.payload or {}).items() if k != "jobId"}
    try:
        return add_job(job.type, payload, priority=job.priority, request_id=job.request_id,
                       scheduled_job_id=job.scheduled_job_id)
    except Exception as exc:
        if reentered:
            assert step is not None  # reentered implies a step
            request_state.transition(job.request_id, request_state.RequestStatus.FAILED, only_from=(step,),
                                     error_message=f"Retry of job {job.id} could not start: {exc}"[:2000])
        raise


@dataclass
class RequeueOutcome:
    started: list[str] = field(default_factory=list)          # new run ids
    refused: list[tuple[str, str]] = field(default_factory=list)  # (failed job id, why)
    stopped: str | None = None  # why the pass stopped early (Redis refused a job)


def requeue_failed(job_type: str) -> RequeueOutcome:
    """Retry every requeueable failed row of a type, oldest first, each through retry_job's claim: all of
    them (no cap), and a second call finds none left. Stops when Redis refuses a job."""
    outcome = RequeueOutcome()
    ids = [row[0] for row in requeueable_failed(job_type).select(Job.id).order_by(Job.created_at).tuples()]
    for job_id in ids:
        try:
            outcome.started.append(retry_job(job_id))
        except EnqueueFailed as exc:
            outcome.stopped = str(exc)
            break
        except (JobActionError, JobSystemError) as exc:
            outcome.refused.append((str(job_id), str(exc)))
    return outcome


def requeue_message(job_type: str, outcome: RequeueOutcome) -> str:
    """The flash message of a "requeue failed": what started, what was refused and why (the first reason)."""
    if not outcome.started and not outcome.refused and not outcome.stopped:
        return f"Nothing to requeue: no failed {job_type} jobs that were not already retried."
    parts = [f"Requeued {len(outcome.started)} failed {job_type} job(s) as new runs."]
    if outcome.refused:
        job_id, reason = outcome.refused[0]
        parts.append(f"{len(outcome.refused)} not requeued (job {job_id}: {reason}).")
    if outcome.stopped:
        parts.append(f"Stopped early, the rest stay failed: {outcome.stopped}")
    return " ".join(parts)

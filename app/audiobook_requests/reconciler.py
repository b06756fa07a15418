"""The request reconciler: no request stays in an in-progress status with nothing working on it.

A request in `pending`, `searching`, `downloading` or `processing` (state.IN_PROGRESS) must always have an
unfinished job (pending, delayed, active or stuck). A bug, a crash between a job's result and the
request's transition, or a run that skipped could leave it with none, and then nothing would ever move
it again. The scheduler calls `reconcile_requests()` every minute (RECONCILE_EVERY_TICKS in
app/schedules/process.py): one query finds the requests in an in-progress status, unchanged for
RECONCILE_GRACE, without an unfinished job (usually none),
`decide_repair` (pure, app/audiobook_requests/repair_rules.py) chooses the repair from the request's last job, and
this shell applies it:

- the last job failed → `failed` with "<job type> failed: <its error>";
- it completed or was cancelled (or there is no job) → the step runs again through `add_job`, its payload
  marked `"reconciled": true`;
- that re-run also ended without moving the request → `failed` (`warn` in processing) instead of a loop.

Each repair is a warn event with context "Reconciler" on the request's timeline: on the job it started,
else on the request's last job.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from peewee import fn

from app.audiobook_requests.failures import fail_request_for_job
from app.audiobook_requests.pipeline import RERUN_STEP, Book
from app.audiobook_requests.repair_rules import (  # noqa: F401  (LastJob, Repair: the decision's vocabulary)
    RECONCILED_KEY,
    UNFINISHED_JOB_STATUSES,
    Action,
    DownloadAttempt,
    DownloadRecord,
    Evidence,
    LastJob,
    Repair,
    decide_repair,
    describe_last_job,
)
from app.audiobook_requests.state import IN_PROGRESS, RequestStatus, transition
from app.jobs.errors import InvalidPayload, UnknownJobType
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.jobs.types import JobKind
from app.models import Audiobook, DownloadHistory, DownloadStatus, Job, Request, utcnow

log = logging.getLogger(__name__)

# A request unchanged for less than this is left alone: the window between a job's end and its successor's
# row, or between a transition and its add_job, is milliseconds; two minutes is far beyond any of them.
RECONCILE_GRACE = timedelta(seconds=120)
RECONCILE_BATCH = 100                    # repairs per run at most (oldest first); the rest wait a minute
EVENT_CONTEXT = "Reconciler"
IN_PROGRESS_STATUSES = tuple(s.value for s in IN_PROGRESS)


def reconcile_requests(now: datetime | None = None, grace: timedelta = RECONCILE_GRACE) -> list[dict]:
    """Find and repair stranded requests; returns one summary per repaired request.

    One query when nothing is stranded (the common case), three reads plus a few writes per repair
    otherwise. A request that fails to repair is logged and skipped; only an unreachable database raises.
    """
    cutoff = (now or utcnow()) - grace
    stranded = find_stranded(cutoff)
    if not stranded:
        return []
    ids = [request.id for request in stranded]
    jobs = _jobs_by_request(ids)
    downloads = _downloads_by_request(ids)
    summaries = []
    for request in stranded:
        try:
            summary = _repair(request, jobs.get(request.id, []), downloads.get(request.id, []))
        except Exception:
            log.exception("reconciler: could not repair request %s (%s); continuing", request.id, request.status)
            continue
        if summary is not None:
            summaries.append(summary)
    return summaries


def _unfinished_jobs_of(request_id: Any):
    return Job.select(Job.id).where((Job.request == request_id) & Job.status.in_(UNFINISHED_JOB_STATUSES))


def find_stranded(cutoff: datetime) -> list[Request]:
    """In-progress requests unchanged since before `cutoff` with no unfinished job, oldest first."""
    return list(Request.select(Request, Audiobook).join(Audiobook)
                .where(Request.status.in_(IN_PROGRESS_STATUSES) & (Request.updated_at < cutoff)
                       & ~fn.EXISTS(_unfinished_jobs_of(Request.id)))
                .order_by(Request.updated_at).limit(RECONCILE_BATCH))


def _jobs_by_request(ids: list[Any]) -> dict[Any, list[Job]]:
    """Each request's jobs, newest first."""
    rows = (Job.select(Job.id, Job.request, Job.type, Job.status, Job.payload, Job.error_message, Job.created_at)
            .where(Job.request.in_(ids)).order_by(Job.created_at.desc(), Job.id.desc()))
    grouped: dict[Any, list[Job]] = {}
    for row in rows:
        grouped.setdefault(row.request_id, []).append(row)
    return grouped


def _downloads_by_request(ids: list[Any]) -> dict[Any, list[DownloadHistory]]:
    """Each request's download_history rows, newest first."""
    rows = DownloadHistory.select().where(DownloadHistory.request.in_(ids)).order_by(
        DownloadHistory.created_at.desc(), DownloadHistory.id.desc())
    grouped: dict[Any, list[DownloadHistory]] = {}
    for row in rows:
        grouped.setdefault(row.request_id, []).append(row)
    return grouped


def _last_job(jobs: list[Job]) -> LastJob | None:
    if not jobs:
        return None
    job = jobs[0]
    return LastJob(id=str(job.id), type=job.type, status=job.status, error_message=job.error_message,
                   reconciled=isinstance(job.payload, dict) and bool(job.payload.get(RECONCILED_KEY)))


def _evidence(request: Request, jobs: list[Job], downloads: list[DownloadHistory]) -> Evidence:
    book = request.audiobook
    attempt = next((DownloadAttempt(payload=dict(j.payload or {}), created_at=j.created_at)
                    for j in jobs if j.type == JobKind.DOWNLOAD_TORRENT), None)
    record = next((DownloadRecord(id=str(d.id), client=d.download_client, client_id=d.download_client_id,
                                  status=d.download_status, created_at=d.created_at, error=d.download_error)
                   for d in downloads if d.selected and d.download_client_id and d.download_client), None)
    completed = next((d.download_path for d in downloads
                      if d.download_status == DownloadStatus.COMPLETED and d.download_path),
                     None)
    return Evidence(request_id=str(request.id), book=Book.of(book),
                    download=record, download_attempt=attempt, completed_download_path=completed)


def _claim(request: Request) -> bool:
    """Take the request for this repair: still in the status and at the updated_at we read, still with no
    unfinished job. Refreshing updated_at makes a concurrent reconciler (a second scheduler) lose."""
    return (Request.update(updated_at=utcnow())
            .where((Request.id == request.id) & (Request.status == request.status)
                   & (Request.updated_at == request.updated_at) & ~fn.EXISTS(_unfinished_jobs_of(request.id)))
            .execute()) == 1


def _repair(request: Request, jobs: list[Job], downloads: list[DownloadHistory]) -> dict | None:
    last_job = _last_job(jobs)
    repair = decide_repair(request.status, last_job, _evidence(request, jobs, downloads))
    if repair.action is Action.NONE or not _claim(request):
        return None
    new_job_id = None
    if repair.action is Action.RERUN:
        assert repair.job_type is not None  # decide_repair names the step of every re-run
        try:
            new_job_id = add_job(repair.job_type, repair.payload, priority=repair.priority, request_id=request.id)
        except (InvalidPayload, UnknownJobType) as exc:   # nothing was written: failing beats retrying forever
            repair = Repair(Action.FAIL, f"stranded in {request.status}; re-running {repair.job_type} was "
                                         f"refused: {exc}")
    if repair.action is not Action.RERUN and not _set_status(request, repair):
        log.info("reconciler: request %s moved on meanwhile; left alone", request.id)
        return None
    since = request.updated_at.strftime("%Y-%m-%d %H:%M:%S")
    done = (f"started {repair.job_type} ({repair.reason})" if new_job_id
            else f"set it to {repair.action.value}: {repair.reason}")
    message = (f"Request {request.id} was stranded in {request.status} since {since} UTC with no unfinished job "
               f"({describe_last_job(last_job)}); {done}")
    summary = {"requestId": str(request.id), "status": request.status, "strandedSince": request.updated_at.isoformat(),
               "lastJobId": last_job.id if last_job else None, "lastJobType": last_job.type if last_job else None,
               "lastJobStatus": last_job.status if last_job else None, "action": repair.action.value,
               "jobId": new_job_id, "jobType": repair.job_type if new_job_id else None, "reason": repair.reason}
    # On the new run, else on the last job: both show on the request's timeline. With neither (no job ever),
    # the reason is the request's error_message and the event goes to the process log only.
    event_job = new_job_id or (last_job.id if last_job else None)
    create_job_logger(event_job, EVENT_CONTEXT).warning(message, summary)
    return summary


def _set_status(request: Request, repair: Repair) -> bool:
    """failed/warn, conditional on the status the request was stranded in."""
    if repair.action is Action.WARN:
        return transition(
            request.id,
            RequestStatus.WARN,
            only_from=(RequestStatus(request.status),),
            error_message=repair.reason[:2000],
        )
    return fail_request_for_job(request.id, RERUN_STEP[request.status], repair.reason)

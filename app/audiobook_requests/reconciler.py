"""The request reconciler: no request stays in an in-progress status with nothing working on it.

A request in `pending`, `searching`, `downloading` or `processing` (state.IN_PROGRESS) must always have an
unfinished job (pending, delayed, active or stuck). A bug, a crash between a job's result and the
request's transition, or a run that skipped could leave it with none, and then nothing would ever move
it again. The scheduler calls `reconcile_requests()` every minute (RECONCILE_EVERY_TICKS in
app/schedules/process.py): one query finds the requests in an in-progress status, unchanged for
RECONCILE_GRACE, without an unfinished job (usually none),
`decide_repair` (pure) chooses the repair from the request's last job, and the shell applies it:

- the last job failed → `failed` with "<job type> failed: <its error>";
- it completed or was cancelled (or there is no job) → the step runs again through `add_job`, its payload
  marked `"reconciled": true`;
- that re-run also ended without moving the request → `failed` (`warn` in processing) instead of a loop.

Each repair is a warn event with context "Reconciler" on the request's timeline: on the job it started,
else on the request's last job.
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from peewee import fn

from app.audiobook_requests.failures import fail_request_for_job
from app.audiobook_requests.state import IN_PROGRESS, R, transition
from app.jobs.errors import InvalidPayload, UnknownJobType
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.jobs.types import Priority
from app.models import Audiobook, DownloadHistory, DownloadStatus, Job, JobStatus, Request, status_values, utcnow

log = logging.getLogger(__name__)

# A request unchanged for less than this is left alone: the window between a job's end and its successor's
# row, or between a transition and its add_job, is milliseconds; two minutes is far beyond any of them.
RECONCILE_GRACE = timedelta(seconds=120)
RECONCILE_BATCH = 100                    # repairs per run at most (oldest first); the rest wait a minute
RECONCILED_KEY = "reconciled"            # payload marker of the runs the reconciler starts
EVENT_CONTEXT = "Reconciler"

IN_PROGRESS_STATUSES = tuple(s.value for s in IN_PROGRESS)
UNFINISHED_JOB_STATUSES = status_values(JobStatus.UNFINISHED)
# The job type whose step works in each in-progress status (fail_request_for_job's sources follow it).
STEP_JOB_TYPE = {R.PENDING.value: "search_indexers", R.SEARCHING.value: "search_indexers",
                 R.DOWNLOADING.value: "download_torrent", R.PROCESSING.value: "organize_files"}
# download_history rows that will never move again: resuming their monitor would only poll a dead torrent.
ENDED_DOWNLOAD_STATUSES = DownloadStatus.ENDED


# ---- the decision: plain data in, a Repair out ----

@dataclass(frozen=True)
class LastJob:
    """The newest jobs row of the request."""
    id: str
    type: str
    status: str
    error_message: str | None = None
    reconciled: bool = False   # started by the reconciler (payload "reconciled": true)


@dataclass(frozen=True)
class Book:
    id: str
    title: str
    author: str
    asin: str | None = None


@dataclass(frozen=True)
class DownloadRecord:
    """The newest selected download_history row with a download client id."""
    id: str
    client: str
    client_id: str
    status: str
    created_at: datetime
    error: str | None = None


@dataclass(frozen=True)
class DownloadAttempt:
    """The newest download_torrent job of the request: its payload and when it was created."""
    payload: dict
    created_at: datetime


@dataclass(frozen=True)
class Evidence:
    """What a re-run can resume from, besides the last job."""
    request_id: str
    book: Book
    download: DownloadRecord | None = None
    download_attempt: DownloadAttempt | None = None
    completed_download_path: str | None = None   # newest completed download_history row's download_path


class Action(enum.StrEnum):
    NONE = "none"       # nothing to repair
    RERUN = "rerun"     # start job_type with payload
    FAIL = "failed"     # request → failed, reason as its error_message
    WARN = "warn"       # request → warn (retryable import), reason as its error_message


@dataclass(frozen=True)
class Repair:
    action: Action
    reason: str
    job_type: str | None = None
    payload: dict | None = None
    priority: Priority | None = None


def decide_repair(request_status: str, last_job: LastJob | None, evidence: Evidence) -> Repair:
    """The repair of a request in `request_status` with no unfinished job, whose newest job is `last_job`."""
    if request_status not in IN_PROGRESS_STATUSES:
        return Repair(Action.NONE, f"{request_status} is not an in-progress status")
    if last_job is not None and last_job.status in UNFINISHED_JOB_STATUSES:
        return Repair(Action.NONE, f"job {last_job.id} ({last_job.type}) is {last_job.status}")
    if last_job is not None and last_job.status == JobStatus.FAILED.value:
        return Repair(Action.FAIL, f"{last_job.type} failed: {last_job.error_message or 'no error was recorded'}")
    if last_job is not None and last_job.reconciled:
        # A re-run we started ended without moving the request: running it again would loop every minute.
        reason = f"stranded in {request_status} after a repair; see the job log"
        if request_status == R.PROCESSING.value:
            # warn, not failed: the import may have copied some or all files already, and warn's retry
            # re-runs only the import (identical files are skipped), where failed's retry would search and
            # download the whole book again.
            return Repair(Action.WARN, reason)
        return Repair(Action.FAIL, reason)
    return _rerun_step(request_status, evidence)


def _rerun_step(request_status: str, evidence: Evidence) -> Repair:
    if STEP_JOB_TYPE.get(request_status) == "search_indexers":  # pending, searching
        return Repair(Action.RERUN, "search again", "search_indexers", search_payload(evidence), Priority.HIGH)
    if request_status == R.DOWNLOADING.value:
        return _resume_download(evidence)
    return _rerun_import(evidence)


def _resume_download(evidence: Evidence) -> Repair:
    """Monitor the newest download, unless a download_torrent job started after it (and never recorded one)."""
    download, attempt = evidence.download, evidence.download_attempt
    if download is not None and (attempt is None or download.created_at >= attempt.created_at):
        if download.status in ENDED_DOWNLOAD_STATUSES:
            return Repair(Action.FAIL, f"the download {download.client_id} ended {download.status}: "
                                       f"{download.error or 'no error was recorded'}")
        return Repair(Action.RERUN, f"monitor download {download.client_id} again", "monitor_download",
                      monitor_payload(evidence.request_id, download), None)
    if attempt is not None:
        return Repair(Action.RERUN, "hand the release to the download client again", "download_torrent",
                      download_payload(attempt), Priority.HIGH)
    return Repair(Action.FAIL, "stranded in downloading with no download to resume")


def _rerun_import(evidence: Evidence) -> Repair:
    if not evidence.completed_download_path:
        return Repair(Action.FAIL, "stranded in processing with no completed download to import")
    return Repair(Action.RERUN, "import the completed download again", "organize_files",
                  organize_payload(evidence), Priority.HIGH)


# Payloads as the pipeline builds them (service.enqueue_search, download.py, monitor._complete), marked.

def search_payload(evidence: Evidence) -> dict:
    book = evidence.book
    return {"requestId": evidence.request_id,
            "audiobook": {"id": book.id, "title": book.title, "author": book.author, "asin": book.asin},
            RECONCILED_KEY: True}


def monitor_payload(request_id: str, download: DownloadRecord) -> dict:
    return {"requestId": request_id, "downloadHistoryId": download.id, "downloadClientId": download.client_id,
            "downloadClient": download.client, RECONCILED_KEY: True}


def download_payload(attempt: DownloadAttempt) -> dict:
    return {**{k: v for k, v in attempt.payload.items() if k != "jobId"}, RECONCILED_KEY: True}


def organize_payload(evidence: Evidence) -> dict:
    return {"requestId": evidence.request_id, "audiobookId": evidence.book.id,
            "downloadPath": evidence.completed_download_path, RECONCILED_KEY: True}


def describe_last_job(last_job: LastJob | None) -> str:
    if last_job is None:
        return "no job was ever started for it"
    return f"its last job {last_job.type} {last_job.id} is {last_job.status}"


# ---- the I/O shell ----

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
                    for j in jobs if j.type == "download_torrent"), None)
    record = next((DownloadRecord(id=str(d.id), client=d.download_client, client_id=d.download_client_id,
                                  status=d.download_status, created_at=d.created_at, error=d.download_error)
                   for d in downloads if d.selected and d.download_client_id and d.download_client), None)
    completed = next((d.download_path for d in downloads
                      if d.download_status == DownloadStatus.COMPLETED and d.download_path),
                     None)
    return Evidence(request_id=str(request.id), book=Book(str(book.id), book.title, book.author, book.audible_asin),
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
        return transition(request.id, R.WARN, only_from=(R(request.status),), error_message=repair.reason[:2000])
    return fail_request_for_job(request.id, STEP_JOB_TYPE[request.status], repair.reason)

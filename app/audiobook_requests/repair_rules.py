"""The reconciler's decision, pure: plain data about a stranded request in, a Repair out (no I/O).

`decide_repair` chooses from the request's last job: its failure fails the request; a completed or cancelled
one (or none) re-runs the step (`pipeline.RERUN_STEP`, its payload from the step's builder, marked
`"reconciled": true`); a re-run that also ended without moving the request fails it (`warn` in processing)
instead of looping. The shell that reads and writes is app/audiobook_requests/reconciler.py.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.audiobook_requests import pipeline
from app.audiobook_requests.pipeline import RERUN_STEP, Book, monitor_payload, organize_payload, search_payload
from app.audiobook_requests.state import IN_PROGRESS, RequestStatus
from app.jobs.types import JobKind, Priority
from app.models import DownloadStatus, JobStatus, status_values

RECONCILED_KEY = "reconciled"            # payload marker of the runs the reconciler starts
MARK = {RECONCILED_KEY: True}
IN_PROGRESS_STATUSES = tuple(s.value for s in IN_PROGRESS)
UNFINISHED_JOB_STATUSES = status_values(JobStatus.UNFINISHED)
# download_history rows that will never move again: resuming their monitor would only poll a dead torrent.
ENDED_DOWNLOAD_STATUSES = DownloadStatus.ENDED


@dataclass(frozen=True)
class LastJob:
    """The newest jobs row of the request."""
    id: str
    type: str
    status: str
    error_message: str | None = None
    reconciled: bool = False   # started by the reconciler (payload "reconciled": true)


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
        if request_status == RequestStatus.PROCESSING.value:
            # warn, not failed: the import may have copied some or all files already, and warn's retry
            # re-runs only the import (identical files are skipped), where failed's retry would search and
            # download the whole book again.
            return Repair(Action.WARN, reason)
        return Repair(Action.FAIL, reason)
    return _rerun_step(request_status, evidence)


def _rerun_step(request_status: str, evidence: Evidence) -> Repair:
    kind = RERUN_STEP[request_status]
    if kind is JobKind.SEARCH_INDEXERS:  # pending, searching
        return _rerun("search again", kind, search_payload(evidence.request_id, evidence.book, **MARK))
    if kind is JobKind.DOWNLOAD_TORRENT:
        return _resume_download(evidence)
    return _rerun_import(evidence)


def _rerun(reason: str, kind: JobKind, payload: dict[str, Any]) -> Repair:
    """A re-run of step `kind` with `payload` (the pipeline's builder, marked), at the step's priority."""
    return Repair(Action.RERUN, reason, kind, payload, pipeline.step(kind).priority)


def _resume_download(evidence: Evidence) -> Repair:
    """Monitor the newest download, unless a download_torrent job started after it (and never recorded one)."""
    download, attempt = evidence.download, evidence.download_attempt
    if download is not None and (attempt is None or download.created_at >= attempt.created_at):
        if download.status in ENDED_DOWNLOAD_STATUSES:
            return Repair(Action.FAIL, f"the download {download.client_id} ended {download.status}: "
                                       f"{download.error or 'no error was recorded'}")
        return _rerun(f"monitor download {download.client_id} again", JobKind.MONITOR_DOWNLOAD,
                      monitor_payload(evidence.request_id, download.id, download.client_id, download.client, **MARK))
    if attempt is not None:
        # the attempt's own payload (the release the search chose), not rebuilt: the search is not repeated
        payload = {**{k: v for k, v in attempt.payload.items() if k != "jobId"}, **MARK}
        return _rerun("hand the release to the download client again", JobKind.DOWNLOAD_TORRENT, payload)
    return Repair(Action.FAIL, "stranded in downloading with no download to resume")


def _rerun_import(evidence: Evidence) -> Repair:
    if not evidence.completed_download_path:
        return Repair(Action.FAIL, "stranded in processing with no completed download to import")
    return _rerun("import the completed download again", JobKind.ORGANIZE_FILES,
                  organize_payload(evidence.request_id, evidence.book.id, evidence.completed_download_path, **MARK))


def describe_last_job(last_job: LastJob | None) -> str:
    if last_job is None:
        return "no job was ever started for it"
    return f"its last job {last_job.type} {last_job.id} is {last_job.status}"

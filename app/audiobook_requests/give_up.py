"""The Activity page's actions on one download in flight: "Remove, blocklist and search again" and "Remove".

Both reuse what a request already does with its torrents (app/audiobook_requests/torrents.py): an unfinished
download of a downloading request is let go of (removed from the client with its partial files, unless
another request shares the torrent), its monitor is cancelled (a running one is fenced off, so it writes
nothing more) and the request goes back to `awaiting_search`. "Remove, blocklist and search again" also
blocklists the release for the request and searches at once (as a stalled download does); "Remove" leaves
the next search to retry_missing_torrents, which may pick the same release again. A torrent kept seeding
after its request let go of it (`seeding`) is removed at once with its files, as the requests page's
"remove now" does. The rules of which row allows what are app/pipeline/activity_rules.py's.
"""
from __future__ import annotations

from typing import Any

from app.audiobook_requests.service import enqueue_search
from app.audiobook_requests.state import RequestStatus, transition
from app.audiobook_requests.torrents import release_torrents, remove_seeding_now, timeline_job
from app.errors import AppError
from app.jobs.logger import create_job_logger
from app.jobs.service import cancel_run
from app.models import TERMINAL_JOB_STATUSES, DownloadHistory, DownloadStatus, Job, status_values, utcnow
from app.pipeline import activity_rules
from app.validation import parse_uuid

EVENT_CONTEXT = "Activity"
# a row that says its download finished: the monitor saw it complete, or its request let go of it seeding
FINISHED = status_values({DownloadStatus.COMPLETED, DownloadStatus.SEEDING})


class ActivityError(AppError):
    """A refused Activity action (404: no such download; 409: the download does not allow it)."""


def _download(download_id: str) -> DownloadHistory:
    canonical = parse_uuid(download_id)
    row = DownloadHistory.get_or_none(DownloadHistory.id == canonical) if canonical else None
    if row is None or not row.download_client_id:
        raise ActivityError("download not found", 404)
    return row


def give_up(download_id: str, *, search_again: bool) -> dict[str, Any]:
    """Remove the download (with its partial files); with `search_again` also blocklist its release and search
    now. ActivityError 409 when the row does not allow it (finished, ended, its request not downloading)."""
    download = _download(download_id)
    request_id = download.request_id
    status = download.request.status
    allowed = activity_rules.actions(kept_seeding=download.download_status == DownloadStatus.SEEDING.value,
                                     finished_now=download.download_status in FINISHED, request_status=status)
    wanted = allowed.search_again if search_again else allowed.remove
    if download.download_status in status_values(DownloadStatus.ENDED):
        raise ActivityError(f"the download already ended ({download.download_status})", 409)
    if not wanted:
        raise ActivityError(allowed.refusal or "a kept torrent can only be removed, not searched again", 409)
    events = create_job_logger(timeline_job(request_id), EVENT_CONTEXT)
    name = download.torrent_name or download.download_client_id
    if download.download_status == DownloadStatus.SEEDING.value:
        released = remove_seeding_now(request_id, events, download_id=download.id)
        return {"searchJobId": None, **released.to_dict()}
    what = "removed, blocklisted and searched again" if search_again else "removed"
    if not transition(request_id, RequestStatus.AWAITING_SEARCH, only_from=(RequestStatus.DOWNLOADING,),
                      next_search_at=utcnow() if search_again else None,
                      error_message=f"Download {name!r} {what} by an admin"):
        raise ActivityError("the request moved on meanwhile; nothing done", 409)
    for job in Job.select().where((Job.request == request_id) & Job.status.not_in(TERMINAL_JOB_STATUSES)):
        cancel_run(job, f"An admin {what} the download")
    reason = f"removed by an admin from Activity ({name!r})" if search_again else None
    released = release_torrents(request_id, events, block_reason=reason)
    search_job = enqueue_search(download.request) if search_again else None
    events.info(f"Download {name!r} {what} by an admin: {len(released.removed)} torrents removed with their "
                f"partial files" + (f", search job {search_job}" if search_job else
                                    "; retry_missing_torrents searches again later"),
                {"downloadId": str(download.id), "searchJobId": search_job, **released.to_dict()})
    return {"searchJobId": search_job, **released.to_dict()}

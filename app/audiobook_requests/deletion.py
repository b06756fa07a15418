"""Deleting a request (admin): a soft delete.

The request becomes `deleted` first (so nothing can lose the delete), then its unfinished jobs are
cancelled (a running one is fenced off: its token is cleared, so its writes are refused) and it lets go of
its torrents (app/audiobook_requests/torrents.py): an unfinished one is removed with its partial files, a
finished one keeps seeding until its indexer's limit (cleanup_seeded_torrents then removes it with its
files), a torrent another request still uses stays. A client failure leaves the request deleted and puts a
warn event on its timeline (its newest job).

Deleting again answers 200 with `alreadyDeleted: true` and retries what is left: jobs still unfinished,
torrents not yet let go of (e.g. the client was down the first time).
"""
from __future__ import annotations

from typing import Any

from app.audiobook_requests.service import get_request
from app.audiobook_requests.state import RequestStatus, transition
from app.audiobook_requests.torrents import release_torrents, timeline_job
from app.jobs.logger import create_job_logger
from app.jobs.service import cancel_run
from app.models import TERMINAL_JOB_STATUSES, Job

EVENT_CONTEXT = "RequestDeleted"


def delete_request(request_id: str) -> dict[str, Any]:
    request = get_request(request_id)
    was = request.status
    newly = transition(request.id, RequestStatus.DELETED, error_message="Deleted by an admin")
    cancelled = [str(job.id) for job in Job.select().where(
        (Job.request == request.id) & Job.status.not_in(TERMINAL_JOB_STATUSES)) if cancel_run(job, "Request deleted")]
    events = create_job_logger(timeline_job(request.id), EVENT_CONTEXT)
    released = release_torrents(request.id, events)
    if newly:
        events.info(f"Request deleted by an admin (was {was}); {len(cancelled)} queued jobs cancelled, "
                    f"{len(released.removed)} unfinished torrents removed with their files, "
                    f"{len(released.seeding)} finished torrents kept seeding until their indexer's limit",
                    {"cancelledJobs": cancelled, **released.to_dict()})
    return {"request": {"id": str(request.id), "status": RequestStatus.DELETED.value}, "alreadyDeleted": not newly,
            "cancelledJobs": cancelled, **released.to_dict()}

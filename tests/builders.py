"""Small builders shared by the test files: the bearer header, an audiobook with its request, a job's event
messages and an import run. Every default is written here once; a test that depends on a value passes it.

Nothing here is a fixture (the `bearer` fixture in conftest.py returns BEARER)."""
from __future__ import annotations

from pathlib import Path

from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.models import Audiobook, Job, JobEvent, Request

from helpers import API_TOKEN, drain

BEARER = {"Authorization": f"Bearer {API_TOKEN}"}  # the API token of make_settings, as a request header
TITLE, AUTHOR = "The Way of Kings", "Brandon Sanderson"


def make_request(status: str = "downloading", *, title: str = TITLE, author: str = AUTHOR,
                 book: dict | None = None, **fields) -> Request:
    """A new audiobook (`title`, `author` and any other columns in `book`) and its request in `status`;
    `fields` are more Request columns (error_message=..., search_attempts=...)."""
    audiobook = Audiobook.create(title=title, author=author, **(book or {}))
    return Request.create(audiobook=audiobook, status=status, **fields)


def event_messages(job: Job | str, level: str | None = None) -> list[str]:
    """The messages of one job's events (of one level if given), oldest first."""
    query = JobEvent.select().where(JobEvent.job == (job.id if isinstance(job, Job) else job))
    if level is not None:
        query = query.where(JobEvent.level == level)
    return [event.message for event in query.order_by(JobEvent.created_at)]


def request_event_messages(request: Request) -> list[str]:
    """The messages of the events of every job of one request, oldest first."""
    query = JobEvent.select().join(Job).where(Job.request == request.id)
    return [event.message for event in query.order_by(JobEvent.created_at)]


def run_organize(request: Request, download_path: Path | str) -> Job:
    """Queue organize_files for `request` from `download_path`, run it in-process, and return its row."""
    job_id = add_job("organize_files", {"requestId": str(request.id), "audiobookId": str(request.audiobook_id),
                                        "downloadPath": str(download_path)})
    drain(queue_names_for_group("organize_files"))
    return Job.get_by_id(job_id)

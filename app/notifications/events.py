"""Queue notifications: one send_notification job (through add_job) per event and target that wants it.

Called where the events happen: a request entering failed, warn or available (app/audiobook_requests/state.py),
a release handed to the download client (workers/processors/download_torrent.py), a job's last attempt failing
(app/jobs/callbacks.py), a schedule turning late or an integration going down and back up (the scheduler,
app/notifications/watch.py). Nothing is sent here: a job per target sends it, retried with back-off, so a
slow or failing target never holds up the pipeline, and queueing never raises into its caller (a refusal is
logged and the pipeline goes on).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.config import get_settings
from app.jobs import fence
from app.jobs.types import JobKind
from app.redaction import redact_text

log = logging.getLogger(__name__)

JOB_TYPE = JobKind.SEND_NOTIFICATION
# runs per message: waits of JOB_BACKOFF_SECONDS × 1, 2, 4, 8 between them (2 s … 16 s by default)
SEND_ATTEMPTS = 5
MAX_TITLE_CHARS = 250
MAX_BODY_CHARS = 2000


_held = threading.local()


@contextmanager
def held_until_commit() -> Iterator[None]:
    """Around a transaction whose writes announce events (`with held_until_commit(), database.atomic():`): the
    messages are queued once it has committed, not inside it. Queued inside, a send_notification job could
    reach its worker before its row is committed, and a worker that finds no row skips the job. A transaction
    that fails announces nothing: what it would have announced did not happen."""
    if getattr(_held, "messages", None) is not None:  # nested: the outermost queues them
        yield
        return
    _held.messages = []
    try:
        yield
        messages = _held.messages
    finally:
        _held.messages = None
    for event, title, body in messages:
        notify(event, title, body)


def notify(event: str, title: str, body: str) -> list[str]:
    """Queue `event`'s message for every target that wants it; the ids of the jobs queued (none yet while
    held_until_commit holds them)."""
    held = getattr(_held, "messages", None)
    if held is not None:
        held.append((event, title, body))
        return []
    from app.jobs.service import add_job
    from app.notifications.store import all_targets

    queued: list[str] = []
    try:
        targets = [target for target in all_targets() if target.wants(event)]
    except Exception as exc:  # noqa: BLE001 - a notification must never stop what caused it
        log.warning("notification %s not queued: the targets could not be read (%s)", event, type(exc).__name__)
        return queued
    # the text leaves for outside services: no configured secret, no target's token (an error may quote one)
    secrets = get_settings().secret_values()
    title, body = redact_text(title, secrets)[:MAX_TITLE_CHARS], redact_text(body, secrets)[:MAX_BODY_CHARS]
    for target in targets:
        payload = {"event": event, "target": target.key, "title": title, "body": body}
        try:
            queued.append(add_job(JOB_TYPE, payload, max_attempts=SEND_ATTEMPTS))
        except fence.LeaseLost:
            raise  # this run was fenced off: it must stop, as at any other write
        except Exception as exc:  # noqa: BLE001
            log.warning("notification %s to %s not queued: %s", event, target.display, type(exc).__name__)
    return queued


def _book(request_id: Any) -> str:
    from app.models import Audiobook, Request

    row = (Audiobook.select(Audiobook.title, Audiobook.author).join(Request)
           .where(Request.id == request_id).first())
    return f"{row.title} by {row.author}" if row is not None else f"request {request_id}"


# request status -> (event, headline); the status machine (state.py) calls request_entered for these only
REQUEST_EVENTS: dict[str, tuple[str, str]] = {
    "available": ("available", "Available in Plex"),
    "failed": ("failed", "Request failed"),
    "warn": ("warn", "Request needs attention"),
}


def request_entered(request_id: Any, status: str, reason: str | None = None) -> list[str]:
    """A request just entered `status` (one of REQUEST_EVENTS): its message, with the reason when there is one."""
    event, headline = REQUEST_EVENTS[status]
    try:
        book = _book(request_id)
    except Exception as exc:  # noqa: BLE001
        log.warning("notification %s not queued: the book could not be read (%s)", event, type(exc).__name__)
        return []
    body = f"{book}: {reason}" if reason else book
    return notify(event, f"{headline}: {book}", body)


def request_grabbed(request_id: Any, release: str, indexer: str | None, client: str) -> list[str]:
    try:
        book = _book(request_id)
    except Exception as exc:  # noqa: BLE001
        log.warning("notification grabbed not queued: the book could not be read (%s)", type(exc).__name__)
        return []
    source = f" from {indexer}" if indexer else ""
    return notify("grabbed", f"Grabbed: {book}", f"{release}{source}, sent to {client}")


def job_failed(job_id: str, job_type: str, error: str) -> list[str]:
    """A job's last attempt failed. Not for send_notification itself: its failure is logged on its job (a
    message about a failed message would go to the targets that may be failing)."""
    if job_type == JOB_TYPE:
        return []
    return notify("job_failed", f"Job failed: {job_type}", f"Job {job_id} ({job_type}) failed after its last "
                                                           f"attempt: {error}")

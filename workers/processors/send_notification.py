"""send_notification: deliver one message to one target (app/notifications/). A failed delivery raises, so
RQ retries it with back-off; a target removed (or no longer wanting the event) meanwhile is skipped."""
from __future__ import annotations

from app.integrations.notifier import send
from app.jobs.logger import create_job_logger
from app.jobs.types import JobKind
from app.notifications.store import find_target
from app.notifications.targets import notify_type
from workers.processors import register


@register(JobKind.SEND_NOTIFICATION)
def process_send_notification(payload: dict) -> dict:
    log = create_job_logger(payload["jobId"], "Notification")
    event = payload["event"]
    target = find_target(payload["target"])  # registers its tokens for redaction before anything is logged
    if target is None or not target.wants(event):
        log.warning(f"The {event} message was not sent: its target was removed or no longer wants {event}")
        return {"success": False, "skipped": True}
    send(target.url, payload.get("title") or "", payload.get("body") or "", notify_type(event))
    log.info(f"Sent the {event} message to {target.display}")
    return {"success": True, "event": event, "target": target.display}

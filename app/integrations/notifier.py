"""The thin client of Apprise (100+ notification services behind one URL scheme each).

Apprise is imported here only, and only when a message is sent or a URL checked: it loads every plugin
(several MB), which the web process, the scheduler and most workers never need.
"""
from __future__ import annotations

import logging

from app.integrations.errors import PermanentServiceError, TransientServiceError
from app.notifications.targets import url_secrets
from app.redaction import redact_text

SERVICE = "Notification"
_MAX_REASON_CHARS = 500


def accepts(url: str) -> bool:
    """Whether Apprise knows the URL's scheme and can read the URL (no network call)."""
    import apprise

    return bool(apprise.Apprise().add(url))


def send(url: str, title: str, body: str, kind: str) -> None:
    """Send one message to one URL. A URL Apprise cannot read is a PermanentServiceError; a refused or failed
    delivery a TransientServiceError (retried with back-off), with what Apprise logged, the URL's tokens
    redacted."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        raise PermanentServiceError(SERVICE, "Apprise cannot use this URL (unknown scheme or malformed)")
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        delivered = sender.notify(title=title, body=body, notify_type=kind)
        said = captured.getvalue().strip()
    if not delivered:
        reason = redact_text(" ".join(said.split()), url_secrets(url))[-_MAX_REASON_CHARS:] or "no reason given"
        raise TransientServiceError(SERVICE, f"delivery failed: {reason}")

"""Where notification targets live: NOTIFY_URLS (read-only, from the settings) and the notification_targets
table (added and removed on /admin/notifications and its API). The one writer of that table.

Every target read here has its tokens registered with app/redaction/, so that whatever this process
writes afterwards (logs, job events, errors) shows them redacted.
"""
from __future__ import annotations

from typing import Any

from app.config import get_settings
from app.errors import AppError
from app.models import NotificationTarget, utcnow
from app.notifications.targets import Target, TargetError, check_url, env_targets, parse_events, url_secrets
from app.redaction import add_known_secrets
from app.validation import parse_uuid

DB_PREFIX = "db:"


class NotificationTargetError(AppError):
    """A refused change of the notification targets (400 unless said)."""

    status = 400


def _learn(targets: list[Target]) -> list[Target]:
    for target in targets:
        add_known_secrets(url_secrets(target.url))
    return targets


def _from_row(row: NotificationTarget) -> Target:
    return Target(f"{DB_PREFIX}{row.id}", row.url, tuple(row.events or ()))


def stored_targets() -> list[Target]:
    return _learn([_from_row(row) for row in NotificationTarget.select().order_by(NotificationTarget.created_at)])


def all_targets() -> list[Target]:
    """NOTIFY_URLS's targets first, then the stored ones, oldest first."""
    return _learn(env_targets(get_settings().notify_urls)) + stored_targets()


def find_target(key: str) -> Target | None:
    """The target a send_notification job names (`db:<id>` or `env:<digest>`), or None once it is gone."""
    if key.startswith(DB_PREFIX):
        row_id = parse_uuid(key[len(DB_PREFIX):])
        row = NotificationTarget.get_or_none(NotificationTarget.id == row_id) if row_id else None
        return _learn([_from_row(row)])[0] if row is not None else None
    return next((t for t in _learn(env_targets(get_settings().notify_urls)) if t.key == key), None)


def _row(target_id: Any) -> NotificationTarget:
    row_id = parse_uuid(target_id)
    row = NotificationTarget.get_or_none(NotificationTarget.id == row_id) if row_id else None
    if row is None:
        raise NotificationTargetError("notification target not found (those from NOTIFY_URLS are changed in the "
                                      "environment)", status=404)
    return row


def add_target(url: Any, events: Any) -> Target:
    """Store a new target after checking its URL (syntax, and that Apprise can use it) and its events."""
    from app.integrations.notifier import accepts

    try:
        checked, wanted = check_url(url), parse_events(events if events is not None else "all")
    except TargetError as exc:
        raise NotificationTargetError(str(exc)) from None
    if not accepts(checked):
        raise NotificationTargetError("Apprise cannot use this URL: unknown scheme or malformed (see "
                                      "https://github.com/caronc/apprise/wiki for each service's URL)")
    if any(target.url == checked for target in all_targets()):
        raise NotificationTargetError("this URL is already a notification target", status=409)
    row = NotificationTarget.create(url=checked, events=list(wanted))
    return _learn([_from_row(row)])[0]


def set_events(target_id: Any, events: Any) -> Target:
    row = _row(target_id)
    try:
        wanted = parse_events(events)
    except TargetError as exc:
        raise NotificationTargetError(str(exc)) from None
    NotificationTarget.update(events=list(wanted), updated_at=utcnow()).where(NotificationTarget.id == row.id).execute()
    return _from_row(NotificationTarget.get_by_id(row.id))


def remove_target(target_id: Any) -> Target:
    row = _row(target_id)
    NotificationTarget.delete().where(NotificationTarget.id == row.id).execute()
    return _learn([_from_row(row)])[0]


def target_to_dict(target: Target) -> dict[str, Any]:
    """The API shape: the URL redacted, never as stored."""
    return {"id": target.key.removeprefix(DB_PREFIX) if target.source == "db" else target.key,
            "source": "settings" if target.source == "env" else "database", "url": target.display,
            "events": list(target.events)}

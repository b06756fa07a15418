"""Notification targets for admins: the page /admin/notifications (list, add, events per target, Test, Remove;
POST forms with CSRF) and the API under /api/admin/notifications. URLs are shown and answered redacted;
changes go through app/notifications/store.py, whose refusals become answers in app/web/errors.py."""
from __future__ import annotations

import logging

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from app.auth.guards import api_admin_required, page_admin_required
from app.integrations.errors import ServiceError
from app.notifications import store
from app.notifications.targets import EVENTS, TEST_EVENT, Target, notify_type
from app.web.errors import json_body

bp = Blueprint("notifications", __name__)
log = logging.getLogger(__name__)


def _find(target_id: str) -> Target:
    key = target_id if target_id.startswith("env:") else f"{store.DB_PREFIX}{target_id}"
    target = store.find_target(key)
    if target is None:
        raise store.NotificationTargetError("notification target not found", status=404)
    return target


def send_test(target: Target) -> str | None:
    """Send the Test message now (not through a job: the admin waits for the answer); None when delivered,
    else why not (redacted)."""
    from app.integrations.notifier import send

    try:
        send(target.url, "ReadMeABook test notification",
             "This target receives ReadMeABook notifications.", notify_type(TEST_EVENT))
    except ServiceError as exc:
        return str(exc)
    return None


# --- API ----------------------------------------------------------------------------------------------

@bp.get("/api/admin/notifications")
@api_admin_required
def api_list():
    """`targets` (NOTIFY_URLS's first, `source: settings`, then the stored ones) and the `events` known."""
    return jsonify(success=True, targets=[store.target_to_dict(t) for t in store.all_targets()],
                   events={name: label for name, (label, _kind) in EVENTS.items()})


def _body_field(body: object, name: str) -> object:
    if not isinstance(body, dict):
        raise store.NotificationTargetError("body must be a JSON object: {url, events}")
    return body.get(name)


@bp.post("/api/admin/notifications")
@api_admin_required
def api_add():
    body = json_body()
    target = store.add_target(_body_field(body, "url"), _body_field(body, "events"))
    return jsonify(success=True, target=store.target_to_dict(target)), 201


@bp.put("/api/admin/notifications/<target_id>")
@api_admin_required
def api_set_events(target_id: str):
    target = store.set_events(target_id, _body_field(json_body(), "events"))
    return jsonify(success=True, target=store.target_to_dict(target))


@bp.delete("/api/admin/notifications/<target_id>")
@api_admin_required
def api_remove(target_id: str):
    return jsonify(success=True, removed=store.target_to_dict(store.remove_target(target_id)))


@bp.post("/api/admin/notifications/<target_id>/test")
@api_admin_required
def api_test(target_id: str):
    target = _find(target_id)
    error = send_test(target)
    return jsonify(success=error is None, target=store.target_to_dict(target), error=error), (200 if error is None
                                                                                             else 502)


# --- page -----------------------------------------------------------------------------------------------

@bp.get("/admin/notifications")
@page_admin_required
def page():
    return render_template("admin/notifications.html", targets=store.all_targets(), events=EVENTS)


def _back():
    return redirect(url_for("notifications.page"))


@bp.post("/admin/notifications")
@page_admin_required
def add():
    try:
        target = store.add_target(request.form.get("url", ""), request.form.getlist("events"))
    except store.NotificationTargetError as exc:
        flash(f"Not added: {exc}")
        return _back()
    flash(f"Added {target.display}.")
    return _back()


@bp.post("/admin/notifications/<target_id>/events")
@page_admin_required
def set_events(target_id: str):
    try:
        target = store.set_events(target_id, request.form.getlist("events"))
    except store.NotificationTargetError as exc:
        flash(f"Not saved: {exc}")
        return _back()
    flash(f"Saved the events of {target.display}.")
    return _back()


@bp.post("/admin/notifications/<target_id>/remove")
@page_admin_required
def remove(target_id: str):
    target = store.remove_target(target_id)  # 404 for an unknown one
    flash(f"Removed {target.display}.")
    return _back()


@bp.post("/admin/notifications/<target_id>/test")
@page_admin_required
def test(target_id: str):
    target = _find(target_id)
    error = send_test(target)
    flash(f"Test message sent to {target.display}." if error is None else f"Test to {target.display} failed: {error}")
    return _back()

"""Activity: every download in flight (/admin/activity, re-rendered by app.js every few seconds, and
GET /api/activity) with its two actions, "Remove, blocklist and search again" and "Remove": POST forms with
CSRF on the page, POST /api/activity/<id>/search-again and /remove in the API. The rows come from
app/reports/activity.py (one client call per page load), the actions from app/audiobook_requests/give_up.py;
a refusal (404, 409) becomes its answer in app/web/errors.py."""
from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for

from app.audiobook_requests.give_up import ActivityError, give_up
from app.auth.guards import api_admin_required, page_admin_required
from app.jobs.errors import JobSystemError
from app.pipeline.activity_rules import duration_text
from app.reports.activity import activity

bp = Blueprint("activity", __name__)
bp.add_app_template_filter(duration_text, "duration_text")
ACTIONS = {"search-again": True, "remove": False}  # the URL's action → give_up(search_again=…)


@bp.get("/api/activity")
@api_admin_required
def api_activity():
    """`{success, downloads: [{id, requestId, requestStatus, book, release, indexer, client, state, progress,
    downloadSpeed, eta, seeders, size, addedAt, ageSeconds, finished, seeding, clientError, actions}]}`."""
    return jsonify(success=True, downloads=activity())


@bp.post("/api/activity/<download_id>/<action>")
@api_admin_required
def api_action(download_id: str, action: str):
    if action not in ACTIONS:
        abort(404)
    return jsonify(success=True, **give_up(download_id, search_again=ACTIONS[action]))


@bp.get("/admin/activity")
@page_admin_required
def page():
    template = "admin/_activity_rows.html" if request.args.get("partial") else "admin/activity.html"
    return render_template(template, downloads=activity())


@bp.post("/admin/activity/<download_id>/<action>")
@page_admin_required
def action(download_id: str, action: str):
    if action not in ACTIONS:
        abort(404)
    try:
        outcome = give_up(download_id, search_again=ACTIONS[action])
    except ActivityError as exc:
        if exc.status == 404:
            abort(404)
        flash(f"Not done: {exc}")
        return redirect(url_for("activity.page"))
    except JobSystemError as exc:
        flash(f"Not done: {exc}")
        return redirect(url_for("activity.page"))
    done = f"Removed {len(outcome['removedTorrents'])} torrents with their files."
    search = f" Searching again (job {outcome['searchJobId']})." if outcome["searchJobId"] else ""
    flash(" ".join([done + search, *outcome["warnings"]]))
    return redirect(url_for("activity.page"))

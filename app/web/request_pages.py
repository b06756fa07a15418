"""Admin pages of audiobook requests: the list with its "New request" form, one request's whole story, and
the list's actions (retry, cancel, delete, remove a seeding torrent). Every action is a POST form with CSRF."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from app.audiobook_requests import deletion as request_deletion
from app.audiobook_requests import service as requests_service
from app.audiobook_requests import state as request_state
from app.audiobook_requests.state import RequestStatus
from app.audiobook_requests.torrents import seeding_torrents
from app.auth.guards import page_admin_required
from app.jobs.errors import JobSystemError
from app.models import Audiobook, Job, Request
from app.reports.job_runs import durations_for
from app.reports.timeline import request_timeline

bp = Blueprint("request_pages", __name__, url_prefix="/admin")

# The request rules the pages ask (a job's are Job.can_retry / Job.can_cancel), so a button shows exactly
# when the service would accept its action.
bp.add_app_template_global(request_state.can_retry, "request_can_retry")
bp.add_app_template_global(request_state.can_cancel, "request_can_cancel")
bp.add_app_template_global(request_state.can_pick, "request_can_pick")


REQUEST_STATUSES = [s.value for s in RequestStatus]
REQUEST_FORM_FIELDS = ("title", "author", "narrator", "asin")


def _status_filter(value: str | None) -> str:
    """"" (every request but deleted ones: the default), "all", or one request status; anything else is ""."""
    return value if value in ("all", *REQUEST_STATUSES) else ""


def _request_rows(status: str) -> tuple[list[Request], dict[str, list[Job]], dict[str, list[dict]]]:
    query = Request.select(Request, Audiobook).join(Audiobook)
    if status == "":
        query = query.where(Request.status != RequestStatus.DELETED.value)
    elif status != "all":
        query = query.where(Request.status == status)
    rows = list(query.order_by(Request.created_at.desc()).limit(100))
    jobs_by_request: dict[str, list[Job]] = {}
    if rows:
        for job in Job.select().where(Job.request.in_([r.id for r in rows])).order_by(Job.created_at):
            jobs_by_request.setdefault(str(job.request_id), []).append(job)
    return rows, jobs_by_request, seeding_torrents([r.id for r in rows])


def _render_requests(status: str = "", form: dict | None = None, errors: dict | None = None,
                     form_error: str | None = None, code: int = 200):
    rows, jobs, seeding = _request_rows(status)
    template = "admin/_requests_rows.html" if request.args.get("partial") else "admin/requests.html"
    return render_template(template, rows=rows, jobs=jobs, seeding=seeding, status_filter=status, form=form or {},
                           errors=errors or {}, form_error=form_error), code


@bp.get("/requests")
@page_admin_required
def requests_page():
    return _render_requests(_status_filter(request.args.get("status")))


@bp.post("/requests")
@page_admin_required
def request_create():
    """The "New request" form: the API's validation and refusals (already requested, already in the library),
    each message shown next to its field or above the form; a created request redirects to the list."""
    form = {name: request.form.get(name, "") for name in REQUEST_FORM_FIELDS}
    body = {name: value if value.strip() else None for name, value in form.items()}  # empty input: not given
    errors = requests_service.field_problems(body)
    if errors:
        return _render_requests(form=form, errors=errors, code=400)
    try:
        created = requests_service.create_request(body)
    except requests_service.RequestError as exc:
        field = exc.details.get("field")
        if field in REQUEST_FORM_FIELDS:
            return _render_requests(form=form, errors={field: str(exc)}, code=exc.status)
        return _render_requests(form=form, form_error=str(exc), code=exc.status)
    except JobSystemError as exc:
        return _render_requests(form=form, form_error=f"Not queued: {exc}", code=503)
    flash(f"Request created for '{created.audiobook.title}'.")
    return redirect(url_for("request_pages.requests_page"))


@bp.get("/requests/<request_id>")
@page_admin_required
def request_detail(request_id: str):
    """One request's whole story: its jobs (with their last and whole durations) and one timeline of every
    event of every job, oldest first."""
    try:
        row = requests_service.get_request(request_id)
    except requests_service.RequestError:
        abort(404)
    jobs = list(Job.select().where(Job.request == row.id).order_by(Job.created_at))
    template = "admin/_request_story.html" if request.args.get("partial") else "admin/request_detail.html"
    return render_template(template, r=row, jobs=jobs, durations=durations_for(jobs), timeline=request_timeline(row),
                           seeding=seeding_torrents([row.id]))


@bp.post("/requests/<request_id>/<action>")
@page_admin_required
def request_action(request_id: str, action: str):
    try:
        if action == "retry":
            requests_service.retry_request(request_id)
            flash("Retry started.")
        elif action == "cancel":
            requests_service.cancel_request(request_id)
            flash("Request cancelled.")
        elif action == "delete":
            outcome = request_deletion.delete_request(request_id)
            flash(" ".join(["Request deleted.", *outcome["warnings"]]))
        elif action == "remove-seeding":
            outcome = requests_service.remove_seeding(request_id)
            flash(" ".join([f"Removed {len(outcome['removedTorrents'])} torrents with their files.",
                            *outcome["warnings"]]))
        else:
            abort(404)
    except requests_service.RequestError as exc:
        flash(f"Not done: {exc}")
    except JobSystemError as exc:
        flash(f"Not done: {exc}")
    return redirect(url_for("request_pages.requests_page"))

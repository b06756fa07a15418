"""The first-run setup wizard, /admin/setup (as the original's): the admin password, Prowlarr, the download client,
paths, Plex (may be skipped), then Finalize, which runs the first Library Scan through Trigger Now and follows
it (app/static/setup.js polls GET /api/admin/job-status/<id> every 2 s; a stuck job or 5 minutes ends the wait).

Each step saves through the settings store (all or nothing), so a step left half-way never breaks the running
stack, and every step can be revisited. Admin pages lead here until Finalize (app/web/settings.py)."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from app import settings_store
from app.auth import credentials, sessions
from app.auth.guards import page_admin_required
from app.jobs.types import JobKind
from app.settings_sections import SECTIONS
from app.web.settings import SectionState, changed_by, environment_settings, handle_section, section_context

bp = Blueprint("setup", __name__, url_prefix="/admin/setup")
STEPS = ("password", "prowlarr", "download_client", "paths", "plex", "finalize")
STEP_TITLES = {"password": "Admin password", "prowlarr": "Prowlarr", "download_client": "Download client",
               "paths": "Paths", "plex": "Plex", "finalize": "Finalize"}
POLL_EVERY_MS = 2000
WAIT_LIMIT_SECONDS = 300


def _next(step: str) -> str:
    return STEPS[min(STEPS.index(step) + 1, len(STEPS) - 1)]


def _render(step: str, state: SectionState | None = None, status: int = 200, **extra):
    return render_template("admin/setup.html", step=step, steps=STEPS, titles=STEP_TITLES,
                           password_from_environment=bool(environment_settings().admin_password),
                           setup_finished=settings_store.snapshot().setup_finished,
                           min_password=credentials.MIN_PASSWORD_CHARS, poll_every=POLL_EVERY_MS,
                           wait_limit=WAIT_LIMIT_SECONDS, **section_context({step: state} if state else None),
                           **extra), status


@bp.get("")
@page_admin_required
def setup():
    step = request.args.get("step", "password")
    if step not in STEPS:
        abort(404)
    return _render(step)


@bp.post("/password")
@page_admin_required
def password():
    new, again = request.form.get("password", ""), request.form.get("password_again", "")
    if settings_store.snapshot().setup_finished and not credentials.verify_credentials(
            current_user.get_id() or "", request.form.get("current_password", "")):
        # once set up, a session alone (a browser left open) must not be enough to take the account
        return _render("password", error="The current password is wrong.", status=400)
    if new != again:
        return _render("password", error="The two passwords differ.", status=400)
    try:
        current_app.config["ADMIN_PASSWORD_HASH"] = credentials.change_generated_password(environment_settings(), new)
    except ValueError as exc:
        return _render("password", error=str(exc), status=400)
    sessions.start_session(current_user.get_id())  # the old password's sessions ended; this one goes on
    return redirect(url_for("setup.setup", step=_next("password")))


@bp.post("/step/<step>")
@page_admin_required
def section_step(step: str):
    if step not in SECTIONS:
        abort(404)
    action = request.form.get("action", "save")
    if action == "skip" and step == "plex":
        return redirect(url_for("setup.setup", step=_next(step)))
    state = handle_section(step, action)
    if state.saved:
        return redirect(url_for("setup.setup", step=_next(step)))
    return _render(step, state, 400 if state.errors else 200)


@bp.post("/finalize")
@page_admin_required
def finalize():
    """Finish the setup; with Plex configured, trigger the first Library Scan and follow it on the page."""
    from app.schedules import service as schedules
    from app.schedules.defaults import ensure_default_schedules

    settings = current_app.config["SETTINGS"]
    ensure_default_schedules(settings)
    job_id = schedules.trigger_job_now(JobKind.SCAN_PLEX) if settings.plex_configured else None
    settings_store.finish_setup(changed_by())
    return _render("finalize", job_id=job_id, finished=True)

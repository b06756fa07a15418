"""Server-rendered admin pages: login, job history, job detail with its event log."""
from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from app.auth import AdminUser, page_admin_required, verify_credentials
from app.jobs import types
from app.jobs.service import get_job
from app.models import Job, JobEvent, JobStatus

bp = Blueprint("admin", __name__)
PAGE_SIZE = 50


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlparse(target).netloc:
        return target
    return url_for("admin.jobs")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        if verify_credentials(form.username.data, form.password.data):
            login_user(AdminUser(form.username.data))
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong username or password.")
    return render_template("login.html", form=form), (401 if request.method == "POST" else 200)


@bp.post("/logout")
@page_admin_required
def logout():
    logout_user()
    return redirect(url_for("admin.login"))


@bp.get("/")
def index():
    return redirect(url_for("admin.jobs"))


@bp.get("/admin/jobs")
@page_admin_required
def jobs():
    status = request.args.get("status") or ""
    job_type = request.args.get("type") or ""
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    query = Job.select().order_by(Job.created_at.desc())
    if status:
        query = query.where(Job.status == status)
    if job_type:
        query = query.where(Job.type == job_type)
    rows = list(query.paginate(page, PAGE_SIZE + 1))
    return render_template("admin/jobs.html", jobs=rows[:PAGE_SIZE], has_next=len(rows) > PAGE_SIZE, page=page,
                           status=status, job_type=job_type, statuses=[s.value for s in JobStatus],
                           types=[t.name for t in types.all_types()])


@bp.get("/admin/jobs/<job_id>")
@page_admin_required
def job_detail(job_id: str):
    job = get_job(job_id)
    if job is None:
        abort(404)
    events = list(JobEvent.select().where(JobEvent.job == job.id).order_by(JobEvent.created_at, JobEvent.id))
    return render_template("admin/job_detail.html", job=job, events=events)

"""Login and logout; the dashboard pages are in app/web/dashboard.py."""
from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from app.auth import AdminUser, login_blocked_for, page_admin_required, record_login, verify_credentials

bp = Blueprint("admin", __name__)


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlparse(target).netloc:
        return target
    return url_for("dashboard.logs")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "POST":
        wait = login_blocked_for()
        if wait:
            flash(f"Too many failed logins from this address; try again in {max(wait // 60, 1)} minute(s).")
            return render_template("login.html", form=form), 429
    if form.validate_on_submit():
        if verify_credentials(form.username.data, form.password.data):
            record_login(True)
            login_user(AdminUser(form.username.data))
            return redirect(_safe_next(request.args.get("next")))
        record_login(False)
        flash("Wrong username or password.")
    return render_template("login.html", form=form), (401 if request.method == "POST" else 200)


@bp.post("/logout")
@page_admin_required
def logout():
    logout_user()
    return redirect(url_for("admin.login"))


@bp.get("/")
def index():
    return redirect(url_for("dashboard.logs"))


@bp.get("/admin/jobs")
@page_admin_required
def jobs():
    """The job history lives on the logs page (kept for old links)."""
    return redirect(url_for("dashboard.logs", **request.args))

"""Login, logout and the site root (it sends to the logs page); the admin pages are in app/web/dashboard.py."""
from __future__ import annotations

import math
from urllib.parse import urlparse

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from app import auth
from app.auth.attempts import begin_login_attempt, log_login_failure, login_succeeded
from app.auth.credentials import verify_credentials
from app.auth.guards import page_admin_required
from app.auth.sessions import end_all_sessions, start_session
from app.auth.throttle import LoginVerdict

bp = Blueprint("login", __name__)


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])

    class Meta:
        def wrap_formdata(self, form, formdata):
            """Form fields only: flask-wtf also reads a JSON body, and one that is not an object (`false`) crashed
            the login with a 500."""
            if request.is_json and request.method != "GET":
                return request.form  # empty: a JSON login is refused like an empty form
            return super().wrap_formdata(form, formdata)  # type: ignore[misc]  # flask-wtf's Meta, untyped


def _safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (other sites, `/\\host`, which browsers read as
    `//host`, control characters) goes to the logs page."""
    if (target and target.startswith("/") and not target.startswith("//") and "\\" not in target
            and target.isprintable() and not urlparse(target).netloc):
        return target
    return url_for("dashboard.logs")


def _refused(form: LoginForm, verdict: LoginVerdict):
    if verdict.refused_for in ("address", "device"):
        flash(f"Too many failed logins from this {verdict.refused_for}; try again in "
              f"{math.ceil(verdict.wait_seconds / 60)} minute(s).")
    else:
        flash(f"Too many failed logins for this account; try again in {verdict.wait_seconds} second(s).")
    return render_template("login.html", form=form), 429, {"Retry-After": str(verdict.wait_seconds)}


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("login.html", form=form), (401 if request.method == "POST" else 200)
    now = auth.throttle_clock()  # the one read of the clock on the login path: the throttle is given it
    verdict = begin_login_attempt(form.username.data, now)  # counted before the password is checked
    if not verdict.allowed:
        log_login_failure(form.username.data, verdict.refused_for)
        return _refused(form, verdict)
    if not verify_credentials(form.username.data, form.password.data):
        log_login_failure(form.username.data)
        flash("Wrong username or password.")
        return render_template("login.html", form=form), 401
    start_session(form.username.data)
    return login_succeeded(form.username.data, redirect(_safe_next(request.args.get("next"))), now)


@bp.post("/logout")
@page_admin_required
def logout():
    """Ends this session and every other session of the user (cookies saved before no longer work)."""
    if current_user.is_authenticated:  # not a bearer-token caller
        end_all_sessions(current_user.get_id())
    return redirect(url_for("login.login"))


@bp.get("/")
def index():
    return redirect(url_for("dashboard.logs"))

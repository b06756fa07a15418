"""Admin authentication: a session (login page) or `Authorization: Bearer <ADMIN_API_TOKEN>`.

There is no built-in default password. Without ADMIN_PASSWORD, the first start generates one,
keeps only its hash under instance/, and logs it once.
"""
from __future__ import annotations

import functools
import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Callable

from flask import current_app, g, jsonify, redirect, request, url_for
from flask_login import LoginManager, UserMixin, current_user
from werkzeug.security import check_password_hash, generate_password_hash

from app.config import Settings

log = logging.getLogger("app.auth")
login_manager = LoginManager()
login_manager.login_view = "admin.login"
PASSWORD_HASH_FILE = "admin_password.hash"
SECRET_KEY_FILE = "secret_key"


class AdminUser(UserMixin):
    def __init__(self, username: str):
        self.id = username


@login_manager.user_loader
def _load_user(user_id: str) -> AdminUser | None:
    if user_id == current_app.config["SETTINGS"].admin_username:
        return AdminUser(user_id)
    return None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def load_or_create_secret_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    path = settings.instance_dir / SECRET_KEY_FILE
    if path.is_file():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    _write_private(path, key)
    return key


def load_or_create_password_hash(settings: Settings) -> str:
    """The admin password hash: from ADMIN_PASSWORD, else the stored hash, else a new random password."""
    if settings.admin_password:
        return generate_password_hash(settings.admin_password)
    path = settings.instance_dir / PASSWORD_HASH_FILE
    if path.is_file():
        return path.read_text().strip()
    password = secrets.token_urlsafe(15)
    password_hash = generate_password_hash(password)
    _write_private(path, password_hash)
    log.warning(
        "No ADMIN_PASSWORD set: generated an admin password for user %r: %s  (shown only this once; "
        "to change it set ADMIN_PASSWORD, or delete %s and restart to generate a new one)",
        settings.admin_username, password, path)
    return password_hash


MAX_FAILED_LOGINS = 5
LOGIN_BLOCK_SECONDS = 900


def _failures_key() -> str:
    return f"rmab:login-failures:{request.remote_addr or 'unknown'}"


def login_blocked_for() -> int:
    """Seconds this address must wait after 5 failed logins (0 when it may try)."""
    from app.jobs.queues import get_redis

    connection = get_redis(current_app.config["SETTINGS"].redis_url)
    try:
        failures = int(connection.get(_failures_key()) or 0)
        return max(connection.ttl(_failures_key()), 1) if failures >= MAX_FAILED_LOGINS else 0
    except Exception:  # Redis down: do not lock admins out of the page that shows the problem
        return 0


def record_login(success: bool) -> None:
    from app.jobs.queues import get_redis

    connection = get_redis(current_app.config["SETTINGS"].redis_url)
    try:
        if success:
            connection.delete(_failures_key())
        else:
            with connection.pipeline() as pipe:
                pipe.incr(_failures_key())
                pipe.expire(_failures_key(), LOGIN_BLOCK_SECONDS)
                pipe.execute()
    except Exception:
        log.warning("could not record a login attempt (Redis unavailable)")


def verify_credentials(username: str, password: str) -> bool:
    settings: Settings = current_app.config["SETTINGS"]
    user_ok = hmac.compare_digest(username.encode(), settings.admin_username.encode())
    password_ok = check_password_hash(current_app.config["ADMIN_PASSWORD_HASH"], password)
    return user_ok and password_ok


def bearer_token_valid() -> bool:
    token = current_app.config["SETTINGS"].admin_api_token
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())


def is_admin() -> bool:
    if getattr(g, "bearer_ok", None) is None:
        g.bearer_ok = bearer_token_valid()
    return bool(g.bearer_ok or current_user.is_authenticated)


def api_admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """JSON APIs: 401 without a session or a valid bearer token."""
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not is_admin():
            return jsonify(success=False, error="Unauthorized",
                           message="Log in as admin or send Authorization: Bearer <ADMIN_API_TOKEN>"), 401
        return view(*args, **kwargs)

    return wrapped


def page_admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Server-rendered pages: redirect anonymous users to the login page."""
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not is_admin():
            return redirect(url_for("admin.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped

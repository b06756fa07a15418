"""What every request must pass: the admin check of pages and JSON APIs, and CSRF on unsafe methods.

An admin is a logged-in session (app/auth/sessions.py) or a request with `Authorization: Bearer
<ADMIN_API_TOKEN>` (app/auth/credentials.py). A bearer-token call needs no CSRF token (a browser never
sends that header on its own); every other POST, PUT, PATCH and DELETE does.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, jsonify, redirect, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect

from app.auth.credentials import bearer_token_valid

csrf = CSRFProtect()
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
            return redirect(url_for("login.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def needs_csrf_token() -> bool:
    """An unsafe method without a valid bearer token: the app's before_request (app/__init__.py) then
    refuses an API caller without a session (401 JSON) and checks the CSRF token (400 without it)."""
    return request.method in UNSAFE_METHODS and not bearer_token_valid()


def acting_admin() -> str:
    """Who an admin action is recorded as: `admin <username>` for a session, `API token` for the bearer token."""
    if current_user.is_authenticated:
        return f"admin {current_user.id}"
    return "API token"

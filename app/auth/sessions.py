"""Admin sessions that a logout really ends.

A session is valid only while it carries the token of its user's current nonce, kept in the instance dir
(it survives a restart and needs no Redis). Logging out draws a new nonce: every cookie saved before, in
any browser, stops working. The token is an HMAC keyed by the password hash, so a new password
(ADMIN_PASSWORD changed, or a regenerated one) ends every session too.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from pathlib import Path

from flask import current_app, session
from flask_login import LoginManager, UserMixin, login_user, logout_user

from app.auth.credentials import write_private

log = logging.getLogger(__name__)
login_manager = LoginManager()
login_manager.login_view = "login.login"
SESSION_NONCES_FILE = "session_nonces.json"
SESSION_TOKEN_KEY = "rmab_auth"
_nonce_lock = threading.Lock()


class AdminUser(UserMixin):
    def __init__(self, username: str):
        self.id = username


@login_manager.user_loader
def _load_user(user_id: str) -> AdminUser | None:
    """Called on each request with a session: the user, unless logged out since (see start_session)."""
    if user_id == current_app.config["SETTINGS"].admin_username and session_is_current(user_id):
        return AdminUser(user_id)
    return None


def _nonces_path() -> Path:
    return current_app.config["SETTINGS"].instance_dir / SESSION_NONCES_FILE


def _unsaved_nonces() -> dict[str, str]:
    """Nonces that could not be written to the instance dir (read-only): they hold for this process."""
    return current_app.extensions.setdefault("rmab_unsaved_session_nonces", {})


def _read_nonces() -> dict[str, str]:
    try:
        stored = json.loads(_nonces_path().read_text())
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def _current_nonce(username: str) -> str | None:
    return _unsaved_nonces().get(username) or _read_nonces().get(username)


def _save_nonce(username: str, nonce: str) -> None:
    with _nonce_lock:
        nonces = {**_read_nonces(), username: nonce}
        try:
            write_private(_nonces_path(), json.dumps(nonces))
            _unsaved_nonces().pop(username, None)
        except OSError as exc:
            log.error("could not save the session nonce under %s (%s): logouts hold only until a restart",
                      _nonces_path(), exc)
            _unsaved_nonces()[username] = nonce


def _session_token(username: str, nonce: str) -> str:
    key = current_app.config["ADMIN_PASSWORD_HASH"].encode()
    return hmac.new(key, f"{username}\n{nonce}".encode(), hashlib.sha256).hexdigest()


def session_is_current(username: str) -> bool:
    nonce = _current_nonce(username)
    presented = session.get(SESSION_TOKEN_KEY)
    if not nonce or not isinstance(presented, str):
        return False
    return hmac.compare_digest(presented, _session_token(username, nonce))


def start_session(username: str) -> None:
    """Log `username` in: a fresh session (nothing carried over from before login) that lives
    PERMANENT_SESSION_LIFETIME after the last request."""
    nonce = _current_nonce(username)
    if nonce is None:
        nonce = secrets.token_urlsafe(24)
        _save_nonce(username, nonce)
    session.clear()
    session.permanent = True
    login_user(AdminUser(username))
    session[SESSION_TOKEN_KEY] = _session_token(username, nonce)


def end_all_sessions(username: str) -> None:
    """Log out: this session and every other one of `username` (saved cookies included)."""
    _save_nonce(username, secrets.token_urlsafe(24))
    logout_user()
    session.clear()

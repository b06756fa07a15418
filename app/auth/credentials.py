"""The admin's secrets: the Flask secret key, the admin password hash, the bearer API token.

There is no built-in default password. Without ADMIN_PASSWORD, the first start generates one, keeps only
its hash under instance/, and logs it once. The secret key, when SECRET_KEY is unset, is generated once
and kept under instance/ too (both files readable by their owner only).
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from flask import current_app, request
from werkzeug.security import check_password_hash, generate_password_hash

from app.config import Settings

log = logging.getLogger(__name__)
PASSWORD_HASH_FILE = "admin_password.hash"
SECRET_KEY_FILE = "secret_key"
CONFIGURED_PASSWORD_HASH_FILE = "admin_password_configured.hash"
MIN_PASSWORD_CHARS = 12


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (a reader sees the old text or the new, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_or_create_secret_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    path = settings.instance_dir / SECRET_KEY_FILE
    if path.is_file():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    write_private(path, key)
    return key


def load_or_create_password_hash(settings: Settings) -> str:
    """The admin password hash: from ADMIN_PASSWORD, else the stored hash, else a new random password."""
    if settings.admin_password:
        return _configured_password_hash(settings)
    path = settings.instance_dir / PASSWORD_HASH_FILE
    if path.is_file():
        return path.read_text().strip()
    password = secrets.token_urlsafe(15)
    password_hash = generate_password_hash(password)
    write_private(path, password_hash)
    log.warning(
        "No ADMIN_PASSWORD set: generated an admin password for user %r: %s  (shown only this once; "
        "to change it set ADMIN_PASSWORD, or delete %s and restart to generate a new one)",
        settings.admin_username, password, path)
    return password_hash


def change_generated_password(settings: Settings, password: str) -> str:
    """The first-run setup's new admin password (only without ADMIN_PASSWORD, which wins): its hash replaces
    the generated one under instance/ (every session of the old one ends); returns the hash."""
    if settings.admin_password:
        raise ValueError("ADMIN_PASSWORD is set in the environment: change it there")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    password_hash = generate_password_hash(password)
    write_private(settings.instance_dir / PASSWORD_HASH_FILE, password_hash)
    log.warning("the admin password of %r was changed in the first-run setup", settings.admin_username)
    return password_hash


def reload_password_hash(app: Any, settings: Settings) -> None:
    """Another web process changed the generated password: read the new hash (one stat per request)."""
    if settings.admin_password:
        return
    path = settings.instance_dir / PASSWORD_HASH_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return
    if app.extensions.get("rmab_password_hash_mtime") not in (None, mtime):
        try:
            app.config["ADMIN_PASSWORD_HASH"] = path.read_text().strip()
        except OSError as exc:  # keep the hash in use; the next request tries again
            log.warning("could not read the new admin password hash under %s (%s)", path, exc)
            return
    app.extensions["rmab_password_hash_mtime"] = mtime


def _configured_password_hash(settings: Settings) -> str:
    """The hash of ADMIN_PASSWORD, reused from instance/ while the password stays the same.

    Sessions are bound to the hash (app/auth/sessions.py): a stable hash keeps them across restarts, and a
    changed ADMIN_PASSWORD gets a new hash, which ends them.
    """
    path = settings.instance_dir / CONFIGURED_PASSWORD_HASH_FILE
    try:
        stored = path.read_text().strip()
        if stored and check_password_hash(stored, settings.admin_password):
            return stored
    except (OSError, ValueError):  # missing, unreadable or not a hash: make a new one
        pass
    password_hash = generate_password_hash(settings.admin_password)
    try:
        write_private(path, password_hash)
    except OSError as exc:
        log.warning("could not keep the ADMIN_PASSWORD hash under %s (%s): sessions end at each restart", path, exc)
    return password_hash


def verify_credentials(username: str, password: str) -> bool:
    settings: Settings = current_app.config["SETTINGS"]
    user_ok = hmac.compare_digest(username.encode(), settings.admin_username.encode())
    password_ok = check_password_hash(current_app.config["ADMIN_PASSWORD_HASH"], password)
    return user_ok and password_ok


def bearer_token_valid() -> bool:
    """`Authorization: Bearer <ADMIN_API_TOKEN>` on this request (never true while the token is unset)."""
    token = current_app.config["SETTINGS"].admin_api_token
    scheme, _, presented = request.headers.get("Authorization", "").strip().partition(" ")
    if not token or scheme.lower() != "bearer":  # auth schemes are case-insensitive (RFC 9110 11.1)
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())

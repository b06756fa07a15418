"""One login attempt in a request: count it on the throttle, clear the counters after the right password
(and set the known-device cookie), and log each failure in one line for fail2ban.

The time comes from the caller as `now` (app/web/login.py reads the clock once per request); nothing here
reads it. Redis is tried first; while it is unreachable the same rules run in this process.
"""
from __future__ import annotations

import ipaddress
import logging
from urllib.parse import quote

from flask import current_app, request
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from app.auth import known_device
from app.auth.throttle import (
    AttemptKeys,
    LoginVerdict,
    MemoryLoginThrottle,
    client_key,
    redis_throttle,
    username_key,
)

log = logging.getLogger("app.auth")  # the logger fail2ban filters match (docs/security.md): kept as it was


def _memory_throttle() -> MemoryLoginThrottle:
    """This app's in-process throttle (one per app, so tests and restarts start clean)."""
    throttle = current_app.extensions.get("rmab_memory_login_throttle")
    if throttle is None:  # setdefault: two first requests at once still share one
        throttle = current_app.extensions.setdefault("rmab_memory_login_throttle", MemoryLoginThrottle())
    return throttle


def _known_device(user_key: str, now: float) -> str | None:
    """The id of the known device (cookie) this browser proves for the user at `now`, or None."""
    return known_device.read(request.cookies.get(known_device.COOKIE_NAME), current_app.config["SECRET_KEY"],
                             current_app.config["ADMIN_PASSWORD_HASH"], user_key, now)


def _attempt_keys(username: str, now: float) -> AttemptKeys:
    user_key = username_key(username)
    return AttemptKeys(client_key(request.remote_addr), user_key, _known_device(user_key, now))


def begin_login_attempt(username: str, now: float) -> LoginVerdict:
    """Count this attempt, made at `now`, before the password is checked, or refuse it; Redis down: count
    in-process."""
    keys = _attempt_keys(username, now)
    try:
        return redis_throttle(current_app.config["SETTINGS"].redis_url).take(keys, now)
    except (RedisError, OSError):
        log.warning("Redis unavailable: login attempts are throttled in this process only")
        return _memory_throttle().take(keys, now)


def login_succeeded(username: str, response: Response, now: float) -> Response:
    """The right password at `now`: clear this address's count and this device's (or, from a browser that is
    no known device, the username's), and set or renew the known-device cookie on `response`."""
    keys = _attempt_keys(username, now)
    _memory_throttle().forget(keys)
    try:
        redis_throttle(current_app.config["SETTINGS"].redis_url).forget(keys)
    except (RedisError, OSError):
        log.warning("Redis unavailable: could not clear the login counters")
    value = known_device.issue(current_app.config["SECRET_KEY"], current_app.config["ADMIN_PASSWORD_HASH"],
                               keys.username, keys.device or known_device.new_device_id(), now)
    response.set_cookie(known_device.COOKIE_NAME, value, max_age=known_device.MAX_AGE_SECONDS,
                        path=known_device.COOKIE_PATH, httponly=True, samesite="Lax",
                        secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response


def _log_token(text: str, limit: int = 100) -> str:
    """`text` as one bare token: percent-encoded (URL rules; letters, digits and `@._-` stay), at most
    `limit` characters of it. A crafted username cannot end the line, add a field, or hold the words of
    another `auth failure ip=…` line (no spaces, no `=`); a megabyte of it is cut."""
    return quote(text[:limit], safe="@._-") + ("…" if len(text) > limit else "")


def log_login_failure(username: str, refused_for: str = "") -> None:
    """One line per failed login, for fail2ban: `auth failure ip=<address> username=<name>` (a wrong
    username or password), or `auth refused ip=… username=… reason=…` (the throttle refused to check).
    The address is as the throttle sees it (TRUSTED_PROXIES), the name percent-encoded (_log_token)."""
    address = request.remote_addr or "unknown"
    try:
        ip = str(ipaddress.ip_address(address))
    except ValueError:
        ip = _log_token(address)
    if refused_for:
        log.warning("auth refused ip=%s username=%s reason=%s", ip, _log_token(username), refused_for)
    else:
        log.warning("auth failure ip=%s username=%s", ip, _log_token(username))

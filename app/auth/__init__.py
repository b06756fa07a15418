"""Admin authentication, one module per job:

- `credentials`: the secret key, the admin password hash (generated when ADMIN_PASSWORD is unset, changed
  in the first-run setup), checking a username and password, the bearer API token;
- `throttle`: the login throttle's rules and counters (Redis, or in-process while Redis is down); every
  decision takes `now` from its caller;
- `known_device`: the signed cookie that lets a browser the admin used before skip the username's wait;
- `attempts`: one login attempt in a request (count, clear, set the cookie, the fail2ban log line);
- `sessions`: logins and logouts that end every saved cookie;
- `guards`: the decorators that refuse anonymous callers, and when a request needs a CSRF token.

The names below are re-exported so `from app.auth import X` keeps working for the app factory, the CLI
and tests.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from app.auth.attempts import begin_login_attempt, log_login_failure, login_succeeded
from app.auth.credentials import (
    MIN_PASSWORD_CHARS,
    bearer_token_valid,
    change_generated_password,
    load_or_create_password_hash,
    load_or_create_secret_key,
    reload_password_hash,
    verify_credentials,
)
from app.auth.guards import acting_admin, api_admin_required, csrf, is_admin, needs_csrf_token, page_admin_required
from app.auth.sessions import end_all_sessions, login_manager, start_session
from app.auth.throttle import (
    THROTTLE_KEY_PREFIX,
    USERNAME_FREE_ATTEMPTS,
    AttemptKeys,
    LoginVerdict,
    client_key,
    redis_throttle,
    username_delay,
    username_key,
)

# The login route's clock: app/web/login.py reads it once per request and passes the time down as `now`
# (nothing in this package reads the clock). A module attribute so tests can move it.
throttle_clock: Callable[[], float] = time.time

__all__ = [
    "MIN_PASSWORD_CHARS", "THROTTLE_KEY_PREFIX", "USERNAME_FREE_ATTEMPTS", "AttemptKeys", "LoginVerdict",
    "acting_admin", "api_admin_required", "bearer_token_valid", "begin_login_attempt", "change_generated_password",
    "client_key", "csrf", "end_all_sessions", "is_admin", "load_or_create_password_hash",
    "load_or_create_secret_key", "log_login_failure", "login_manager", "login_succeeded", "needs_csrf_token",
    "page_admin_required", "redis_throttle", "reload_password_hash", "start_session", "throttle_clock",
    "username_delay", "username_key", "verify_credentials",
]

"""Admin authentication: a session (login page) or `Authorization: Bearer <ADMIN_API_TOKEN>`.

There is no built-in default password. Without ADMIN_PASSWORD, the first start generates one,
keeps only its hash under instance/, and logs it once.

Also here: the login throttle (per address, per username and per known device, counted before the
password is checked), the log line of each failed login, and the server-side session nonce that makes
a logout end every saved cookie.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import current_app, g, jsonify, redirect, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from redis.exceptions import RedisError
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from app import known_device
from app.config import Settings

log = logging.getLogger("app.auth")
login_manager = LoginManager()
login_manager.login_view = "login.login"
PASSWORD_HASH_FILE = "admin_password.hash"
SECRET_KEY_FILE = "secret_key"
CONFIGURED_PASSWORD_HASH_FILE = "admin_password_configured.hash"


class AdminUser(UserMixin):
    def __init__(self, username: str):
        self.id = username


@login_manager.user_loader
def _load_user(user_id: str) -> AdminUser | None:
    """Called on each request with a session: the user, unless logged out since (see start_session)."""
    if user_id == current_app.config["SETTINGS"].admin_username and session_is_current(user_id):
        return AdminUser(user_id)
    return None


def _write_private(path: Path, text: str) -> None:
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
    _write_private(path, key)
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
    _write_private(path, password_hash)
    log.warning(
        "No ADMIN_PASSWORD set: generated an admin password for user %r: %s  (shown only this once; "
        "to change it set ADMIN_PASSWORD, or delete %s and restart to generate a new one)",
        settings.admin_username, password, path)
    return password_hash


MIN_PASSWORD_CHARS = 12


def change_generated_password(settings: Settings, password: str) -> str:
    """The first-run setup's new admin password (only without ADMIN_PASSWORD, which wins): its hash replaces
    the generated one under instance/ (every session of the old one ends); returns the hash."""
    if settings.admin_password:
        raise ValueError("ADMIN_PASSWORD is set in the environment: change it there")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    password_hash = generate_password_hash(password)
    _write_private(settings.instance_dir / PASSWORD_HASH_FILE, password_hash)
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

    Sessions are bound to the hash (see _session_token): a stable hash keeps them across restarts, and a
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
        _write_private(path, password_hash)
    except OSError as exc:
        log.warning("could not keep the ADMIN_PASSWORD hash under %s (%s): sessions end at each restart", path, exc)
    return password_hash


# --- The login throttle ----------------------------------------------------------------------------------
# Every login attempt is counted *before* the password is checked (one atomic step), so parallel guesses
# cannot all slip through between a check and an increment. Three counters:
# - per client address (an IPv6 client by its /64, which one host usually owns whole): 5 counted attempts,
#   then blocked for 15 minutes after the last one; a success clears it.
# - per username, whatever the address: 4 free attempts, then each further one must wait 1 s, 2 s, 4 s …
#   up to 5 minutes after the previous one (so a botnet gets a few hundred guesses a day, not millions).
# - per known device (app/known_device.py: a signed cookie set at each successful login): an attempt from
#   a known device of that username skips the username's wait and is not counted on it (the attacker's
#   guesses on the username cannot lock the real admin out of the browsers they use); instead the device
#   has a limit like an address: 5 counted attempts, then blocked for 15 minutes. The address limit holds.
# Refused attempts are not counted (they check no password). With Redis down the same rules run in-process.

MAX_FAILED_LOGINS = 5
LOGIN_BLOCK_SECONDS = 900
USERNAME_FREE_ATTEMPTS = 4
USERNAME_MAX_DELAY_SECONDS = 300
USERNAME_WINDOW_SECONDS = 86400  # a username's count is forgotten a day after its last attempt
MEMORY_THROTTLE_MAX_ENTRIES = 10_000
THROTTLE_KEY_PREFIX = "rmab:login:"

throttle_clock: Callable[[], float] = time.time  # module attribute so tests can move the clock


def client_key(address: str | None) -> str:
    """What the per-address counter counts: the IPv4 address, or the /64 of an IPv6 address."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(((int(ip) >> 64) << 64, 64)))
    return str(ip)


def username_delay(attempts: int) -> int:
    """Seconds the next attempt on a username must wait after its `attempts`-th counted attempt."""
    if attempts <= USERNAME_FREE_ATTEMPTS:
        return 0
    return min(2 ** (attempts - USERNAME_FREE_ATTEMPTS - 1), USERNAME_MAX_DELAY_SECONDS)


def _username_delays() -> list[int]:
    """username_delay(1), username_delay(2), … up to the cap: the table the Redis script reads."""
    delays = [username_delay(1)]
    while delays[-1] < USERNAME_MAX_DELAY_SECONDS:
        delays.append(username_delay(len(delays) + 1))
    return delays


@dataclass(frozen=True)
class AttemptKeys:
    """What one login attempt is counted against."""

    address: str
    username: str
    device: str | None = None  # a known device of this username: counted instead of the username


@dataclass(frozen=True)
class LoginVerdict:
    allowed: bool
    wait_seconds: int = 0
    refused_for: str = ""  # "address", "device" or "username" when refused


# KEYS: address count, username count, username next-allowed time (ms), and for a known device its count.
# ARGV: now (ms), max per address (and device), address (and device) block (s), username window (s), then
# username_delay(1), username_delay(2), … (the last repeats).
_TAKE_ATTEMPT_LUA = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local address_count = tonumber(redis.call('GET', KEYS[1]) or '0')
if address_count >= limit then
  return {0, redis.call('TTL', KEYS[1]), 'address'}
end
if #KEYS == 4 then
  if tonumber(redis.call('GET', KEYS[4]) or '0') >= limit then
    return {0, redis.call('TTL', KEYS[4]), 'device'}
  end
  for _, key in ipairs({KEYS[1], KEYS[4]}) do
    redis.call('INCR', key)
    redis.call('EXPIRE', key, ARGV[3])
  end
  return {1, 0, ''}
end
local next_allowed = tonumber(redis.call('GET', KEYS[3]) or '0')
if now < next_allowed then
  return {0, math.ceil((next_allowed - now) / 1000), 'username'}
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local attempts = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local delay = tonumber(ARGV[4 + math.min(attempts, #ARGV - 4)])
if delay > 0 then
  redis.call('SET', KEYS[3], string.format('%d', now + delay * 1000), 'EX', ARGV[4])
end
return {1, 0, ''}
"""


def _address_redis_key(address_key: str) -> str:
    return f"{THROTTLE_KEY_PREFIX}address:{address_key}"


def _username_redis_keys(username_key: str) -> list[str]:
    return [f"{THROTTLE_KEY_PREFIX}user:{username_key}", f"{THROTTLE_KEY_PREFIX}user-next:{username_key}"]


def _device_redis_key(device: str) -> str:
    return f"{THROTTLE_KEY_PREFIX}device:{device}"


class RedisLoginThrottle:
    def __init__(self, connection: Any):
        self._connection = connection
        self._script = connection.register_script(_TAKE_ATTEMPT_LUA)

    def take(self, keys: AttemptKeys, now: float) -> LoginVerdict:
        redis_keys = [_address_redis_key(keys.address), *_username_redis_keys(keys.username)]
        if keys.device:
            redis_keys.append(_device_redis_key(keys.device))
        allowed, wait, refused_for = self._script(
            keys=redis_keys,
            args=[int(now * 1000), MAX_FAILED_LOGINS, LOGIN_BLOCK_SECONDS, USERNAME_WINDOW_SECONDS,
                  *_username_delays()])
        reason = refused_for.decode() if isinstance(refused_for, bytes) else refused_for
        return LoginVerdict(bool(allowed), max(int(wait), 1) if not allowed else 0, reason)

    def forget(self, keys: AttemptKeys) -> None:
        """A success: clear the address and the device, or (no known device) the username."""
        second = [_device_redis_key(keys.device)] if keys.device else _username_redis_keys(keys.username)
        self._connection.delete(_address_redis_key(keys.address), *second)

    def unlock(self, username_key: str | None = None, address_key: str | None = None) -> int:
        """`flask --app app unlock-login`: clear a username's or an address's counters, or (neither given)
        every counter of the throttle, devices included. Returns how many keys were removed."""
        if username_key is None and address_key is None:
            names = list(self._connection.scan_iter(match=f"{THROTTLE_KEY_PREFIX}*", count=500))
        else:
            names = ([*_username_redis_keys(username_key)] if username_key is not None else []) + \
                ([_address_redis_key(address_key)] if address_key is not None else [])
        return int(self._connection.delete(*names)) if names else 0


class MemoryLoginThrottle:
    """The same rules in this process only: used while Redis is unreachable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # address and device keys -> (count, forgotten at): both are limited the same way
        self._blocks: dict[str, tuple[int, float]] = {}
        self._usernames: dict[str, tuple[int, float, float]] = {}  # key -> (count, next allowed, forgotten at)

    def take(self, keys: AttemptKeys, now: float) -> LoginVerdict:
        counted = [("address", f"address:{keys.address}")]
        if keys.device:
            counted.append(("device", f"device:{keys.device}"))
        with self._lock:
            self._prune(now)
            for reason, key in counted:
                count, until = self._blocks.get(key, (0, now))
                if count >= MAX_FAILED_LOGINS:
                    return LoginVerdict(False, max(math.ceil(until - now), 1), reason)
            if not keys.device:
                attempts, next_allowed, _ = self._usernames.get(keys.username, (0, 0.0, now))
                if now < next_allowed:
                    return LoginVerdict(False, max(math.ceil(next_allowed - now), 1), "username")
                attempts += 1
                self._usernames[keys.username] = (attempts, now + username_delay(attempts),
                                                  now + USERNAME_WINDOW_SECONDS)
            for _, key in counted:
                self._blocks[key] = (self._blocks.get(key, (0, now))[0] + 1, now + LOGIN_BLOCK_SECONDS)
            return LoginVerdict(True)

    def forget(self, keys: AttemptKeys) -> None:
        with self._lock:
            self._blocks.pop(f"address:{keys.address}", None)
            if keys.device:
                self._blocks.pop(f"device:{keys.device}", None)
            else:
                self._usernames.pop(keys.username, None)

    def _prune(self, now: float) -> None:
        """Bounded memory: at the limit, forget expired entries, then the oldest ones (a quarter of the limit stays)."""
        if len(self._blocks) + len(self._usernames) < MEMORY_THROTTLE_MAX_ENTRIES:
            return
        self._blocks = {k: v for k, v in self._blocks.items() if v[1] > now}
        self._usernames = {k: v for k, v in self._usernames.items() if v[2] > now}
        for table in (self._blocks, self._usernames):
            for key in list(table)[: max(len(table) - MEMORY_THROTTLE_MAX_ENTRIES // 4, 0)]:
                del table[key]


def username_key(username: str) -> str:
    """What the per-username counter counts (and a known-device cookie names): case and spaces ignored."""
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


def _memory_throttle() -> MemoryLoginThrottle:
    """This app's in-process throttle (one per app, so tests and restarts start clean)."""
    throttle = current_app.extensions.get("rmab_memory_login_throttle")
    if throttle is None:  # setdefault: two first requests at once still share one
        throttle = current_app.extensions.setdefault("rmab_memory_login_throttle", MemoryLoginThrottle())
    return throttle


def redis_throttle(redis_url: str) -> RedisLoginThrottle:
    from app.redis_connection import get_redis

    return RedisLoginThrottle(get_redis(redis_url))


def _known_device(user_key: str) -> str | None:
    """The id of the known device (cookie) this browser proves for the user, or None."""
    return known_device.read(request.cookies.get(known_device.COOKIE_NAME), current_app.config["SECRET_KEY"],
                             current_app.config["ADMIN_PASSWORD_HASH"], user_key, throttle_clock())


def _attempt_keys(username: str) -> AttemptKeys:
    user_key = username_key(username)
    return AttemptKeys(client_key(request.remote_addr), user_key, _known_device(user_key))


def begin_login_attempt(username: str) -> LoginVerdict:
    """Count this attempt (before the password is checked) or refuse it; Redis down: count in-process."""
    keys = _attempt_keys(username)
    try:
        return redis_throttle(current_app.config["SETTINGS"].redis_url).take(keys, throttle_clock())
    except (RedisError, OSError):
        log.warning("Redis unavailable: login attempts are throttled in this process only")
        return _memory_throttle().take(keys, throttle_clock())


def login_succeeded(username: str, response: Response) -> Response:
    """The right password: clear this address's count and this device's (or, from a browser that is no
    known device, the username's), and set or renew the known-device cookie on `response`."""
    keys = _attempt_keys(username)
    _memory_throttle().forget(keys)
    try:
        redis_throttle(current_app.config["SETTINGS"].redis_url).forget(keys)
    except (RedisError, OSError):
        log.warning("Redis unavailable: could not clear the login counters")
    value = known_device.issue(current_app.config["SECRET_KEY"], current_app.config["ADMIN_PASSWORD_HASH"],
                               keys.username, keys.device or known_device.new_device_id(), throttle_clock())
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


# --- Sessions ----------------------------------------------------------------------------------------------
# A session is valid only while it carries the token of its user's current nonce, kept in the instance
# dir (it survives a restart and needs no Redis). Logging out draws a new nonce: every cookie saved before,
# in any browser, stops working. The token is an HMAC keyed by the password hash, so a new password
# (ADMIN_PASSWORD changed, or a regenerated one) ends every session too.

SESSION_NONCES_FILE = "session_nonces.json"
SESSION_TOKEN_KEY = "rmab_auth"
_nonce_lock = threading.Lock()


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
            _write_private(_nonces_path(), json.dumps(nonces))
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


def verify_credentials(username: str, password: str) -> bool:
    settings: Settings = current_app.config["SETTINGS"]
    user_ok = hmac.compare_digest(username.encode(), settings.admin_username.encode())
    password_ok = check_password_hash(current_app.config["ADMIN_PASSWORD_HASH"], password)
    return user_ok and password_ok


def bearer_token_valid() -> bool:
    token = current_app.config["SETTINGS"].admin_api_token
    scheme, _, presented = request.headers.get("Authorization", "").strip().partition(" ")
    if not token or scheme.lower() != "bearer":  # auth schemes are case-insensitive (RFC 9110 11.1)
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


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


def acting_admin() -> str:
    """Who an admin action is recorded as: `admin <username>` for a session, `API token` for the bearer token."""
    if current_user.is_authenticated:
        return f"admin {current_user.id}"
    return "API token"

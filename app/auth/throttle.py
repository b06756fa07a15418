"""The login throttle's counters: the rules, kept in Redis (one atomic script) or in this process.

Every login attempt is counted *before* the password is checked (one atomic step), so parallel guesses
cannot all slip through between a check and an increment. Three counters:
- per client address (an IPv6 client by its /64, which one host usually owns whole): 5 counted attempts,
  then blocked for 15 minutes after the last one; a success clears it.
- per username, whatever the address: 4 free attempts, then each further one must wait 1 s, 2 s, 4 s …
  up to 5 minutes after the previous one (so a botnet gets a few hundred guesses a day, not millions).
- per known device (app/auth/known_device.py: a signed cookie set at each successful login): an attempt
  from a known device of that username skips the username's wait and is not counted on it (the attacker's
  guesses on the username cannot lock the real admin out of the browsers they use); instead the device
  has a limit like an address: 5 counted attempts, then blocked for 15 minutes. The address limit holds.
Refused attempts are not counted (they check no password). With Redis down the same rules run in-process.

Nothing here reads the clock: every decision takes `now` (seconds since the epoch) from its caller
(app/web/login.py reads it once per request), so the rules can be tested at any instant. Only the
expiry of the Redis keys (the address and device blocks) runs on the Redis server's clock.
"""
from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
from dataclasses import dataclass
from typing import Any

MAX_FAILED_LOGINS = 5
LOGIN_BLOCK_SECONDS = 900
USERNAME_FREE_ATTEMPTS = 4
USERNAME_MAX_DELAY_SECONDS = 300
USERNAME_WINDOW_SECONDS = 86400  # a username's count is forgotten a day after its last attempt
MEMORY_THROTTLE_MAX_ENTRIES = 10_000
THROTTLE_KEY_PREFIX = "rmab:login:"


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


def username_key(username: str) -> str:
    """What the per-username counter counts (and a known-device cookie names): case and spaces ignored."""
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


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
        """Count an attempt made at `now` or refuse it (the username's wait is measured from `now`)."""
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
        """Count an attempt made at `now` or refuse it; every wait and expiry is measured from `now`."""
        counted = [("address", f"address:{keys.address}")]
        if keys.device:
            counted.append(("device", f"device:{keys.device}"))
        with self._lock:
            self._prune(now)
            for reason, key in counted:
                count, until = self._blocks.get(key, (0, now))
                if count >= MAX_FAILED_LOGINS and now < until:
                    return LoginVerdict(False, max(math.ceil(until - now), 1), reason)
            if not keys.device:
                attempts, next_allowed, forgotten_at = self._usernames.get(keys.username, (0, 0.0, now))
                if now >= forgotten_at:  # a day without attempts: the count starts again
                    attempts, next_allowed = 0, 0.0
                if now < next_allowed:
                    return LoginVerdict(False, max(math.ceil(next_allowed - now), 1), "username")
                attempts += 1
                self._usernames[keys.username] = (attempts, now + username_delay(attempts),
                                                  now + USERNAME_WINDOW_SECONDS)
            for _, key in counted:
                count, until = self._blocks.get(key, (0, now))
                self._blocks[key] = ((count if now < until else 0) + 1, now + LOGIN_BLOCK_SECONDS)
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


def redis_throttle(redis_url: str) -> RedisLoginThrottle:
    # Redis comes from the job package for now (app/jobs/queues.py); a shared low-level home is planned.
    from app.jobs.queues import get_redis

    return RedisLoginThrottle(get_redis(redis_url))

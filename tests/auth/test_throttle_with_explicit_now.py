"""The login throttle's rules at explicit instants: every call gets its `now` from the test.

The instants are far from today's clock (T0 is in 2001) and the expected waits are exact, so a rule that
read the clock instead of its `now` argument would give other waits (or none) and fail these tables.
"""
from __future__ import annotations

import pytest

from app.auth.throttle import (
    LOGIN_BLOCK_SECONDS,
    USERNAME_WINDOW_SECONDS,
    AttemptKeys,
    LoginVerdict,
    MemoryLoginThrottle,
    RedisLoginThrottle,
)

T0 = 1_000_000_000.0  # 2001-09-09: years before the clock of any machine running this
ADDRESS = AttemptKeys("203.0.113.9", "user-key")
DEVICE = AttemptKeys("203.0.113.9", "user-key", device="device-1")


def _from_addresses(count: int) -> list[AttemptKeys]:
    """`count` attempts on one username, each from its own address (so only the username's wait applies)."""
    return [AttemptKeys(f"198.51.100.{i}", "user-key") for i in range(count)]


def _refused(wait: int, reason: str) -> LoginVerdict:
    return LoginVerdict(False, wait, reason)


ALLOWED = LoginVerdict(True)

# (attempts as (keys, seconds after T0), the verdict of the last one)
MEMORY_CASES = {
    "five from one address are counted": ([(ADDRESS, 0)] * 5, ALLOWED),
    "the sixth is refused for the whole block": ([(ADDRESS, 0)] * 6, _refused(LOGIN_BLOCK_SECONDS, "address")),
    "the block is measured from the last counted attempt": (
        [(ADDRESS, 0)] * 4 + [(ADDRESS, 100), (ADDRESS, 160)], _refused(LOGIN_BLOCK_SECONDS - 60, "address")),
    "one second before the block ends": ([(ADDRESS, 0)] * 5 + [(ADDRESS, LOGIN_BLOCK_SECONDS - 1)],
                                         _refused(1, "address")),
    "the block ends after fifteen minutes": ([(ADDRESS, 0)] * 5 + [(ADDRESS, LOGIN_BLOCK_SECONDS)], ALLOWED),
    "four free attempts on a username from anywhere": (
        [(keys, 0) for keys in _from_addresses(5)], ALLOWED),
    "the sixth on a username waits 1 s after the fifth": (
        [(keys, 0) for keys in _from_addresses(6)], _refused(1, "username")),
    "it may try once that second has passed": (
        [(keys, 0) for keys in _from_addresses(5)] + [(AttemptKeys("198.51.100.99", "user-key"), 1)], ALLOWED),
    "then the wait doubles": (
        [(keys, 0) for keys in _from_addresses(5)] + [(AttemptKeys("198.51.100.98", "user-key"), 1),
                                                     (AttemptKeys("198.51.100.99", "user-key"), 2.5)],
        _refused(1, "username")),
    "a username's count goes on within the day": (  # the seventh attempt waits 2 s after the sixth
        [(keys, 0) for keys in _from_addresses(5)] + [(AttemptKeys(f"198.51.100.{i}", "user-key"),
                                                       USERNAME_WINDOW_SECONDS - 1) for i in (98, 99)],
        _refused(2, "username")),
    "a username's count is forgotten a day after its last attempt": (  # the same two are the first and second
        [(keys, 0) for keys in _from_addresses(5)] + [(AttemptKeys(f"198.51.100.{i}", "user-key"),
                                                       USERNAME_WINDOW_SECONDS) for i in (98, 99)], ALLOWED),
    "a known device skips the username's wait": (
        [(keys, 0) for keys in _from_addresses(6)] + [(DEVICE, 0)], ALLOWED),
    "a known device has its own block": (
        [(AttemptKeys(f"198.51.100.{i}", "user-key", "device-1"), 30) for i in range(6)],
        _refused(LOGIN_BLOCK_SECONDS, "device")),
    "a device's block ends after fifteen minutes too": (
        [(AttemptKeys(f"198.51.100.{i}", "user-key", "device-1"), 30) for i in range(5)]
        + [(AttemptKeys("198.51.100.77", "user-key", "device-1"), 30 + LOGIN_BLOCK_SECONDS)], ALLOWED),
}


@pytest.mark.parametrize("attempts, last", MEMORY_CASES.values(), ids=MEMORY_CASES.keys())
def test_the_in_process_throttle_at_given_instants(attempts, last):
    throttle = MemoryLoginThrottle()
    verdicts = [throttle.take(keys, T0 + offset) for keys, offset in attempts]
    assert verdicts[-1] == last


def test_a_success_clears_the_address_at_any_instant():
    throttle = MemoryLoginThrottle()
    for _ in range(5):
        throttle.take(ADDRESS, T0)
    throttle.forget(ADDRESS)
    assert throttle.take(ADDRESS, T0 + 1) == ALLOWED


# The Redis script: the username's wait is stored as an instant computed from the caller's `now` (the
# address and device blocks are key expiries, on the Redis server's clock, so they are not tabled here).
REDIS_CASES = {
    "the sixth on a username waits 1 s after the fifth": ([0] * 6, _refused(1, "username")),
    "it may try once that second has passed": ([0] * 5 + [1], ALLOWED),
    "the seventh waits 2 s after the sixth": ([0] * 5 + [1, 2], _refused(1, "username")),
    "and may try 2 s after it": ([0] * 5 + [1, 3], ALLOWED),
    "a wait of 1.5 s left is shown as 2 s": ([0] * 5 + [1, 1.5], _refused(2, "username")),
}


@pytest.mark.parametrize("offsets, last", REDIS_CASES.values(), ids=REDIS_CASES.keys())
def test_the_redis_throttle_measures_the_username_wait_from_the_given_now(redis_conn, offsets, last):
    throttle = RedisLoginThrottle(redis_conn)
    verdicts = [throttle.take(AttemptKeys(f"198.51.100.{i}", "table-user"), T0 + offset)
                for i, offset in enumerate(offsets)]
    assert verdicts[-1] == last
    assert all(v.allowed for v in verdicts[:-1])

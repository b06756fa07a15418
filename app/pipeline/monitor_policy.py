"""When to poll a download again, when to log progress, when to give up on a stalled one."""
from __future__ import annotations

BASE_DELAY = 10.0
MAX_DELAY = 300.0
LOG_STEP = 5
MAX_CONNECTION_FAILURES = 30


def next_delay(stall_count: int, base: float = BASE_DELAY) -> float:
    """`base` (10 s) while the download moves; doubling per motionless poll, capped at 300 s."""
    return min(MAX_DELAY, base * (2 ** min(max(stall_count, 0), 16)))


def progress_to_log(previous_logged: int | None, percent: int) -> bool:
    """Log the first poll, every poll below 5 %, and each new 5 % step."""
    if previous_logged is None or percent < LOG_STEP:
        return previous_logged != percent
    return percent // LOG_STEP > previous_logged // LOG_STEP


def moved(previous_bytes: int | None, current_bytes: int) -> bool:
    """New bytes since the last poll (the first poll counts as movement: the stall clock starts there)."""
    return previous_bytes is None or current_bytes > previous_bytes


def stalled_too_long(motionless_seconds: float, stall_limit_seconds: float) -> bool:
    return stall_limit_seconds > 0 and motionless_seconds >= stall_limit_seconds

"""Cron strings: validation, next fire time in the configured time zone, and a human label."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter


class InvalidSchedule(ValueError):
    """A cron string that is not a valid 5-field expression; the message says why."""


MAX_YEARS_BETWEEN_RUNS = 5
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def validate_cron(expression: object, now: datetime | None = None) -> str:
    """The expression, whitespace collapsed, if it is a valid 5-field cron string that fires at least once
    within MAX_YEARS_BETWEEN_RUNS of `now` (naive UTC; default: the current time); raises InvalidSchedule
    with the reason otherwise. ("0 0 31 2 *" parses but never fires: the scheduler could not compute its
    next run.)"""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidSchedule("schedule must be a non-empty cron string such as '*/5 * * * *'")
    value = " ".join(expression.split())
    if not (value.isascii() and value.isprintable()):
        raise InvalidSchedule(f"cron string {value!r} must be printable ASCII")
    fields = value.split(" ")
    if len(fields) != 5:
        raise InvalidSchedule(f"cron string must have 5 fields (minute hour day month weekday), got {len(fields)}")
    try:
        croniter(value)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidSchedule(f"invalid cron string {value!r}: {exc}") from None
    start = (now or datetime.now(UTC).replace(tzinfo=None)).replace(tzinfo=UTC)
    try:
        croniter(value, start, max_years_between_matches=MAX_YEARS_BETWEEN_RUNS).get_next(datetime)
    except (ValueError, OverflowError):  # CroniterBadDateError is a ValueError
        raise InvalidSchedule(f"{value!r} never fires (no time within {MAX_YEARS_BETWEEN_RUNS} years)") from None
    return value


def next_fire_time(expression: str, after: datetime, tz_name: str = "UTC") -> datetime:
    """The first fire time strictly after `after` (naive UTC), as naive UTC, evaluated in `tz_name`."""
    zone = ZoneInfo(tz_name)
    start = after.replace(tzinfo=UTC).astimezone(zone)
    following = croniter(expression, start).get_next(datetime)
    return following.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def describe(expression: str, tz_name: str = "UTC") -> str:
    """A short English label for the common shapes; the raw string otherwise."""
    fields = expression.split()
    if len(fields) != 5:
        return expression
    minute, hour, dom, month, dow = fields
    suffix = f" ({tz_name})"
    if month != "*":
        return f"Cron {expression}{suffix}"
    if (minute, hour, dom, dow) == ("*", "*", "*", "*"):
        return "Every minute"
    if minute.startswith("*/") and (hour, dom, dow) == ("*", "*", "*"):
        return f"Every {minute[2:]} minutes"
    if minute.isdigit() and hour == "*" and (dom, dow) == ("*", "*"):
        return "Every hour" if minute == "0" else f"Every hour at minute {minute}"
    if minute.isdigit() and hour.startswith("*/") and (dom, dow) == ("*", "*"):
        at = "" if minute == "0" else f" at minute {minute}"
        return f"Every {hour[2:]} hours{at}"
    if minute.isdigit() and hour.isdigit():
        clock = f"{int(hour):02d}:{int(minute):02d}"
        if (dom, dow) == ("*", "*"):
            return f"Daily at {clock}{suffix}"
        if dom == "*" and dow.isdigit() and int(dow) <= 7:
            return f"Weekly on {_DAYS[int(dow)]} at {clock}{suffix}"
        if dow == "*" and dom.isdigit():
            return f"Monthly on day {dom} at {clock}{suffix}"
    return f"Cron {expression}{suffix}"

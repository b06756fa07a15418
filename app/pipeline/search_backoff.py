"""When a request waiting for a release (`awaiting_search`) is searched again: a back-off per request.

The first fruitless search waits FIRST_DELAY, each further one in a row twice as long, never more than
MAX_DELAY: 15 min, 30 min, 1 h, 2 h, 4 h, 8 h, 16 h, then every 24 h. A release that appears in the evening
is grabbed in the evening for a fresh request, while a book nobody has uploaded in weeks costs one Prowlarr
search a day. Pure: the count comes from requests.fruitless_searches; the caller adds the delay to when
the search started.
"""
from __future__ import annotations

from datetime import timedelta

FIRST_DELAY = timedelta(minutes=15)
MAX_DELAY = timedelta(hours=24)
# 2 ** 7 × 15 min is past MAX_DELAY already: larger exponents change nothing (and stay small numbers).
_MAX_DOUBLINGS = 7


def search_delay(fruitless_searches: int) -> timedelta:
    """The wait after the `fruitless_searches`-th search in a row that found nothing usable (1 or more)."""
    if fruitless_searches < 1:
        raise ValueError(f"fruitless_searches must be 1 or more, not {fruitless_searches}")
    return min(FIRST_DELAY * 2 ** min(fruitless_searches - 1, _MAX_DOUBLINGS), MAX_DELAY)


def describe_delay(delay: timedelta) -> str:
    """"15 min", "1 h", "1 h 30 min", "24 h": the wait as the request's timeline says it."""
    minutes = int(delay.total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")

"""Pages of the list APIs and pages (logs, blocklist): `page` and `per_page` (25/50/100) from the URL, newest
first, and `hasNext` from fetching one row more (no COUNT over a long table)."""
from __future__ import annotations

from typing import Any

import peewee

from app.errors import AppError

PAGE_SIZES = (25, 50, 100)
MAX_PAGE = 100_000  # deeper pages are useless and their OFFSET would overflow PostgreSQL's bigint


class PageError(AppError, ValueError):
    """A page or page size that cannot be used (400); the message names it."""


def parse_page(args: Any) -> tuple[int, int]:
    """(page, per_page) from query args; PageError naming the bad one."""
    try:
        page = int(args.get("page") or 1)
        per_page = int(args.get("per_page") or PAGE_SIZES[0])
    except ValueError:
        raise PageError("page and per_page must be numbers") from None
    if not 1 <= page <= MAX_PAGE:
        raise PageError(f"page must be a whole number from 1 to {MAX_PAGE}")
    if per_page not in PAGE_SIZES:
        raise PageError(f"per_page must be one of {', '.join(map(str, PAGE_SIZES))}")
    return page, per_page


def fetch_page(query: peewee.SelectQuery, page: int, per_page: int) -> tuple[list, bool]:
    """The rows of one page of an ordered query, and whether another page follows."""
    rows = list(query.offset((page - 1) * per_page).limit(per_page + 1))
    return rows[:per_page], len(rows) > per_page


def page_count(total: int, per_page: int) -> int:
    """How many pages `total` rows fill (at least one: an empty list is shown as page 1 of 1)."""
    return max(1, -(-total // per_page))


def pagination(page: int, per_page: int, has_next: bool) -> dict[str, Any]:
    """The `pagination` object of a list API's answer."""
    return {"page": page, "perPage": per_page, "hasNext": has_next, "hasPrevious": page > 1}

"""Whether a Plex item fits a plex_library row (pure): a scan skips an item that does not, with an event,
instead of failing the scan of the whole library."""
from __future__ import annotations

from app.integrations.plex import PlexItem
from app.validation import INT4_MAX, INT8_MAX, out_of_range, too_long

# datetime.fromtimestamp's last second (9999-12-31T23:59:59Z): addedAt is stored as a timestamp.
MAX_EPOCH_SECONDS = 253402300799


def item_problem(item: PlexItem) -> str | None:
    """Why `item` cannot be stored (guid and rating key varchar, year integer, duration bigint, addedAt a
    date); None when it can."""
    return (too_long("guid", item.guid) or too_long("ratingKey", item.rating_key)
            or out_of_range("year", item.year, INT4_MAX) or out_of_range("duration", item.duration_ms, INT8_MAX)
            or out_of_range("addedAt", item.added_at, MAX_EPOCH_SECONDS, minimum=0))

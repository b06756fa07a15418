"""When to poll a download again, when to log progress, when to give up on a stalled one, and when a torrent
(and its files) may be removed without taking them from another request."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

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


# --- the stall clock ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StallClock:
    """Carried from poll to poll. `since`: start of the current motionless stretch while the torrent is allowed
    to download, None while the client holds it (paused, queued, checking, moving). `count`: polls in a row
    without new bytes, which drives the back-off."""

    since: datetime | None
    count: int


def next_stall_clock(previous: StallClock, now: datetime, *, allowed: bool, moved: bool) -> StallClock:
    """The clock after one poll.

    - held (not allowed to download): nothing counts, `since` is cleared; polls keep backing off;
    - new bytes: the clock restarts now and polls come quickly again;
    - allowed again after a hold (or the first poll): the clock starts now, polls come quickly again, so time
      spent paused/queued/checking never counts toward the stall limit;
    - allowed, no new bytes: the stretch goes on.
    """
    if not allowed:
        return StallClock(None, previous.count + 1)
    if moved or previous.since is None:
        return StallClock(now, 0)
    return StallClock(previous.since, previous.count + 1)


def motionless_seconds(clock: StallClock, now: datetime) -> float:
    """How long an allowed torrent has made no progress (0 while held)."""
    return 0.0 if clock.since is None else (now - clock.since).total_seconds()


# --- who else uses a torrent --------------------------------------------------------------------------------

# A request in one of these is finished with its torrent (an available one only once it seeded long enough).
FINISHED_REQUEST_STATUSES = frozenset({"available", "cancelled", "failed"})
# A download_history row in one of these has let go of its torrent.
RELEASED_DOWNLOAD_STATUSES = frozenset({"removed", "failed"})


@dataclass(frozen=True)
class TorrentUser:
    """Another request's download_history row for the same torrent (same client, same info hash)."""

    request_id: str
    request_status: str
    download_status: str
    seeding_minutes: int  # its indexer's seeding time (INDEXER_SEEDING_MINUTES); 0 = seed forever


def still_needs_torrent(user: TorrentUser, seeding_seconds: int) -> bool:
    """Whether that other request still needs the torrent and its files:
    - its row has let go (removed, failed) or the request is cancelled or failed: no;
    - an available request: while the torrent must still seed for it (forever, or its time not reached);
    - any other status (pending … downloaded, awaiting_import, warn): yes, it is downloading or importing them.
    """
    if user.download_status in RELEASED_DOWNLOAD_STATUSES or user.request_status in ("cancelled", "failed"):
        return False
    if user.request_status == "available":
        return user.seeding_minutes <= 0 or seeding_seconds < user.seeding_minutes * 60
    return True


def holders(users: Iterable[TorrentUser], seeding_seconds: int) -> list[TorrentUser]:
    """The other requests that keep a torrent from being removed."""
    return [user for user in users if still_needs_torrent(user, seeding_seconds)]


def describe_holders(users: Iterable[TorrentUser]) -> str:
    return ", ".join(f"request {u.request_id} ({u.request_status})" for u in users)


class StallRemoval(str, enum.Enum):
    WITH_FILES = "with_files"        # the torrent and its partial data
    TORRENT_ONLY = "torrent_only"    # the torrent; the (complete) data stays on disk
    LEAVE = "leave"                  # nothing: another request uses it


def stall_removal(progress: float, other_holders: list[TorrentUser]) -> StallRemoval:
    """What a stall removes: the torrent with its files only when the download is incomplete and no other
    request uses it; complete data is kept; a torrent another request uses is left in the client."""
    if other_holders:
        return StallRemoval.LEAVE
    if progress >= 1:
        return StallRemoval.TORRENT_ONLY
    return StallRemoval.WITH_FILES

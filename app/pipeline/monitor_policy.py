"""When to poll a download again, when to log progress, when to give up on a stalled one, and when a torrent
(and its files) may be removed without taking them from another request."""
from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.pipeline.seeding import SeedingLimit
from app.statuses import FINISHED_WITH_TORRENT, RELEASED_TORRENT, DownloadStatus

BASE_DELAY = 10.0
MAX_DELAY = 300.0
LOG_STEP = 5
MAX_CONNECTION_FAILURES = 30
RECONNECT_CAP_POLLS = 30  # an unreachable client is asked again after at most 30 poll intervals
SNAPSHOT_MAX_AGE = 5.0  # seconds: how stale the shared answer of the client may be (torrent_snapshot.py)


def snapshot_max_age(base_delay: float = BASE_DELAY) -> float:
    """How long one answer of the client serves every poll: half the poll interval, at most 5 s. Polls of a
    download come `base_delay` apart, so each reads a newer answer than the last, and the client is asked at
    most about twice per interval whatever the number of downloads."""
    return max(0.1, min(SNAPSHOT_MAX_AGE, base_delay / 2))


def next_delay(stall_count: int, base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """`base` (10 s) while the download moves; doubling per motionless poll, capped at `cap` (300 s)."""
    return min(cap, base * (2 ** min(max(stall_count, 0), 16)))


def reconnect_delay(connection_failures: int, base: float = BASE_DELAY) -> float:
    """The next poll after the `connection_failures`-th failure in a row to reach the client (or find the
    torrent): `base` after the first, doubling, capped at 30 × `base`."""
    return next_delay(connection_failures - 1, base, cap=base * RECONNECT_CAP_POLLS)


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


# --- what one poll carries to the next ----------------------------------------------------------------------

@dataclass(frozen=True)
class PollState:
    """monitor_download's state from poll to poll. It travels in the RQ job's meta and is shown in the jobs
    row's payload (workers/runner.py) under the camelCase keys of `to_payload`: rows written before this
    class existed read back the same."""

    stall_count: int = 0
    connection_failures: int = 0
    last_bytes: int | None = None
    last_progress: float | None = None
    last_logged_percent: int | None = None
    motionless_since: datetime | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> PollState:
        since = payload.get("motionlessSince")
        return cls(stall_count=int(payload.get("stallCount", 0)),
                   connection_failures=int(payload.get("connectionFailures", 0)),
                   last_bytes=payload.get("lastBytes"), last_progress=payload.get("lastProgress"),
                   last_logged_percent=payload.get("lastLoggedPercent"),
                   motionless_since=datetime.fromisoformat(since) if since else None)

    def to_payload(self) -> dict[str, Any]:
        return {"stallCount": self.stall_count, "connectionFailures": self.connection_failures,
                "lastBytes": self.last_bytes, "lastProgress": self.last_progress,
                "lastLoggedPercent": self.last_logged_percent,
                "motionlessSince": self.motionless_since.isoformat() if self.motionless_since else None}

    @property
    def stall_clock(self) -> StallClock:
        return StallClock(self.motionless_since, self.stall_count)


class PollOutcome(enum.Enum):
    POLL_AGAIN = "poll_again"
    STALLED = "stalled"   # allowed to download, motionless past the limit: blocklist, search again


@dataclass(frozen=True)
class PollDecision:
    """What one poll of a torrent still downloading (neither complete nor failed) leads to."""

    outcome: PollOutcome
    poll: PollState          # carried to the next poll
    delay: float             # seconds until that poll
    log_progress: bool       # a new progress step to log
    clock_held: bool         # say the stall clock is held (not allowed to download)
    motionless: float        # seconds without new bytes while allowed


def decide_poll(previous: PollState, now: datetime, *, percent: int, downloaded: int, progress: float,
                allowed: bool, stall_limit_seconds: float, base_delay: float) -> PollDecision:
    """The poll state after one successful look-up, and whether the download stalled for good."""
    log_progress = progress_to_log(previous.last_logged_percent, percent)
    clock = next_stall_clock(previous.stall_clock, now, allowed=allowed, moved=moved(previous.last_bytes, downloaded))
    clock_held = not allowed and (previous.motionless_since is not None or previous.last_bytes is None)
    poll = replace(previous, connection_failures=0, stall_count=clock.count, motionless_since=clock.since,
                   last_bytes=downloaded, last_progress=progress,
                   last_logged_percent=percent if log_progress else previous.last_logged_percent)
    motionless = motionless_seconds(clock, now)
    stalled = allowed and stalled_too_long(motionless, stall_limit_seconds)
    return PollDecision(PollOutcome.STALLED if stalled else PollOutcome.POLL_AGAIN, poll,
                        next_delay(poll.stall_count, base_delay), log_progress, clock_held, motionless)



# --- a poll inside a poll batch -----------------------------------------------------------------------------

def plain_poll(previous: PollState, now: datetime, *, request_downloading: bool, download_open: bool,
               found: bool, complete: bool, failed: bool, downloaded: int, progress: float, allowed: bool,
               stall_limit_seconds: float, base_delay: float) -> PollDecision | None:
    """The decision of a poll batch (workers/poll_batch.py) for one download, or None when the poll is not a
    plain "still downloading, poll again" and goes to the download's own ordinary run (workers/processors/
    monitor_download.py), which handles every other case: the request moved on, the download_history row was settled,
    the torrent is missing from the client's answer (looked up on its own, with retries), complete, failed
    in the client, or stalled past the limit."""
    if not (request_downloading and download_open and found) or complete or failed:
        return None
    decision = decide_poll(previous, now, percent=int(progress * 100), downloaded=downloaded, progress=progress,
                           allowed=allowed, stall_limit_seconds=stall_limit_seconds, base_delay=base_delay)
    return decision if decision.outcome is PollOutcome.POLL_AGAIN else None

# --- who else uses a torrent --------------------------------------------------------------------------------

# Who has let go of a torrent, and who is finished with it: the vocabulary's sets (app/statuses.py).
FINISHED_REQUEST_STATUSES = FINISHED_WITH_TORRENT
RELEASED_REQUEST_STATUSES = RELEASED_TORRENT
RELEASED_DOWNLOAD_STATUSES = DownloadStatus.ENDED


@dataclass(frozen=True)
class TorrentUser:
    """Another download_history row for the same torrent (same client, same info hash)."""

    request_id: str
    request_status: str
    download_status: str
    seeding_minutes: int  # its indexer's seeding time (INDEXER_SEEDING_MINUTES); 0 = no time limit
    seeding_ratio: float = 0.0  # its indexer's ratio (INDEXER_SEEDING_RATIO); 0 = no ratio limit

    @property
    def seeding_limit(self) -> SeedingLimit:
        return SeedingLimit(self.seeding_minutes, self.seeding_ratio)


def still_needs_torrent(user: TorrentUser, seeding_seconds: int, ratio: float = 0.0) -> bool:
    """Whether that other row still needs the torrent and its files:
    - the row has let go (removed, failed): no;
    - a row kept seeding after its request let go of it (`seeding`), or an available request's: while the
      torrent must still seed for its indexer (forever without a limit; else until the limit is reached);
    - a cancelled, failed or deleted request: no;
    - any other status (pending … downloaded, awaiting_import, warn): yes, it is downloading or importing them.
    """
    if user.download_status in RELEASED_DOWNLOAD_STATUSES:
        return False
    if user.download_status == DownloadStatus.SEEDING or user.request_status == "available":
        return not user.seeding_limit.reached(seeding_seconds, ratio)
    return user.request_status not in RELEASED_REQUEST_STATUSES


def holders(users: Iterable[TorrentUser], seeding_seconds: int, ratio: float = 0.0) -> list[TorrentUser]:
    """The other rows that keep a torrent from being removed."""
    return [user for user in users if still_needs_torrent(user, seeding_seconds, ratio)]


def describe_holders(users: Iterable[TorrentUser]) -> str:
    return ", ".join(f"request {u.request_id} ({u.request_status})" for u in users)


class StallRemoval(enum.StrEnum):
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

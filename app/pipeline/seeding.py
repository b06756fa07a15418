"""Seeding rules (pure): when a finished torrent has seeded enough for its indexer, what letting go of a
request's torrent does, and how the pages say until when a kept torrent seeds.

Private trackers record a finished torrent removed before its seeding goal as a hit-and-run, so a finished
torrent is never removed on delete, cancel or swap: it seeds until its indexer's limit
(INDEXER_SEEDING_MINUTES and INDEXER_SEEDING_RATIO), then cleanup_seeded_torrents removes it with its files.
An unfinished download owes the tracker nothing and goes at once, with its partial files.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SeedingLimit:
    """An indexer's seeding goal. Each criterion set to 0 is off; with both set, both must be met (the
    original's AND rule: "1440 min and ratio 1.0" keeps seeding until the later of the two); with neither,
    the torrent seeds forever."""

    minutes: int = 0
    ratio: float = 0.0

    @property
    def forever(self) -> bool:
        return self.minutes <= 0 and self.ratio <= 0

    def reached(self, seeding_seconds: int, ratio: float) -> bool:
        if self.forever:
            return False
        time_met = self.minutes <= 0 or seeding_seconds >= self.minutes * 60
        ratio_met = self.ratio <= 0 or ratio >= self.ratio
        return time_met and ratio_met

    def describe(self) -> str:
        """'60 min', 'ratio 1.0', '60 min and ratio 1.0' or 'no limit'."""
        parts = ([f"{self.minutes} min"] if self.minutes > 0 else []) + \
            ([f"ratio {self.ratio:g}"] if self.ratio > 0 else [])
        return " and ".join(parts) or "no limit"


def seeding_until(limit: SeedingLimit, completed_at: datetime | None) -> str:
    """What the pages say about a kept torrent: 'seeding until 2026-12-06 14:05 UTC', 'seeding until ratio 1.0',
    both joined by 'and', or 'seeding (no limit set for its indexer)'. The time is an estimate from when the
    download completed: the client counts only time actually spent seeding."""
    if limit.forever:
        return "seeding (no limit set for its indexer)"
    parts = []
    if limit.minutes > 0:
        if completed_at is None:
            parts.append(f"{limit.minutes} min of seeding")
        else:
            parts.append(f"{(completed_at + timedelta(minutes=limit.minutes)):%Y-%m-%d %H:%M} UTC")
    if limit.ratio > 0:
        parts.append(f"ratio {limit.ratio:g}")
    return "seeding until " + " and ".join(parts)


class LetGo(enum.StrEnum):
    """What letting go of one of a request's torrents does (delete, cancel, an admin's swap)."""

    KEEP_SEEDING = "seeding"        # finished: stays in the client until its limit, then cleanup removes it
    REMOVE_WITH_FILES = "removed"   # unfinished: the torrent and its partial files go now
    SHARED = "shared"               # another request still uses it: left as it is
    GONE = "gone"                   # no longer in the client


def let_go(in_client: bool, finished: bool, used_by_others: bool) -> LetGo:
    """The decision for one torrent a request lets go of."""
    if not in_client:
        return LetGo.GONE
    if used_by_others:
        return LetGo.SHARED
    return LetGo.KEEP_SEEDING if finished else LetGo.REMOVE_WITH_FILES

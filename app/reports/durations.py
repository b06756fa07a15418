"""How long a job took: its last run, and its whole life from first start to end (pure; no I/O).

A jobs row keeps the times of its latest run only (`started_at` is rewritten by every run: each attempt,
each poll of monitor_download). Earlier runs left their events, so a row's first start is the earlier of
its last run's start and its first event. A job an admin retried is a chain of rows (each failed row points
at the next through `retry_job_id`); its whole duration runs from the first start of the chain's first row
to the end of its last.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RowTimes:
    """What one jobs row says about when it ran."""
    started_at: datetime | None          # the latest run's start
    completed_at: datetime | None        # the latest run's end (None while it has not ended)
    first_event_at: datetime | None      # the row's oldest event: an earlier run's, when there were several
    attempts: int = 1
    polls: int = 0


@dataclass(frozen=True)
class Durations:
    last_run: float | None   # seconds of the latest run of the row shown
    whole: float | None      # seconds from the chain's first start to its end; None: not ended yet
    runs_many: bool          # polled, attempted again or retried: the whole differs from the last run


def first_start(row: RowTimes) -> datetime | None:
    known = [t for t in (row.started_at, row.first_event_at) if t is not None]
    return min(known) if known else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max((end - start).total_seconds(), 0.0), 3)


def durations(chain: list[RowTimes]) -> Durations:
    """`chain`: the rows of one job, oldest first (a single row unless an admin retried it); the last is the
    row shown."""
    if not chain:
        raise ValueError("a job has at least one row")
    shown = chain[-1]
    starts = [s for s in map(first_start, chain) if s is not None]
    runs_many = len(chain) > 1 or shown.polls > 0 or shown.attempts > 1
    return Durations(last_run=_seconds(shown.started_at, shown.completed_at),
                     whole=_seconds(min(starts) if starts else None, shown.completed_at), runs_many=runs_many)


def human(seconds: float | None) -> str:
    """'12.3 s', '4.5 min', '2.1 h'; '–' when unknown."""
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"

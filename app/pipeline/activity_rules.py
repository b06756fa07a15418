"""The Activity page's rules (pure): what a download in flight may be asked to do, and how its ETA reads.

"Remove, blocklist and search again" and "Remove" give up on an unfinished download of a request that is
downloading it (an unfinished torrent owes its tracker nothing: it goes with its partial files). A finished
one is owed its seeding (app/pipeline/seeding.py): only a torrent its request already let go of (`seeding`)
may be removed at once, as the requests page's "remove now" does; one a request still imports or keeps is
left to cleanup_seeded_torrents.
"""
from __future__ import annotations

from dataclasses import dataclass

# qBittorrent's `eta` when it cannot tell (8640000 s = 100 days); Transmission's -1 (not available) and
# -2 (unknown) are below zero
QBITTORRENT_NO_ETA = 8_640_000


@dataclass(frozen=True)
class Actions:
    remove: bool               # "Remove" (with its partial files, or a kept torrent's files)
    search_again: bool         # "Remove, blocklist and search again"
    refusal: str | None = None  # why neither applies (the API's 409)


def finished(stored_finished: bool, progress: float | None) -> bool:
    """Finished: its row says so (completed, or kept seeding), or the client has every byte (`progress`: the
    client's, None when it is not in it)."""
    return stored_finished or (progress is not None and progress >= 1)


def actions(*, kept_seeding: bool, finished_now: bool, request_status: str) -> Actions:
    """Which actions a download in flight offers: `kept_seeding` when its request let go of it (`seeding`),
    `finished_now` as `finished` says."""
    if kept_seeding:
        return Actions(remove=True, search_again=False)
    if finished_now:
        return Actions(False, False, "the download finished: it seeds until its indexer's limit, then "
                                     "cleanup_seeded_torrents removes it")
    if request_status != "downloading":
        return Actions(False, False, f"its request is {request_status}, not downloading")
    return Actions(remove=True, search_again=True)


def eta_seconds(raw: int | None, finished_now: bool) -> int | None:
    """The client's ETA, or None when there is none to show (finished, unknown, infinite)."""
    if finished_now or raw is None or raw < 0 or raw >= QBITTORRENT_NO_ETA:
        return None
    return raw


def duration_text(seconds: float | None) -> str:
    """'45 s', '12 min', '3 h 05 min', '2 d 4 h'; '–' for none."""
    if seconds is None:
        return "–"
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"

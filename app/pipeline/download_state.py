"""Download client states mapped onto one vocabulary (qBittorrent's state strings, Transmission's numeric
status), and which of them count toward the stall limit."""
from __future__ import annotations

from app.statuses import DownloadState

__all__ = ["DownloadState", "counts_toward_stall", "qbittorrent_state", "transmission_state"]


_QBT = {
    # seeding side: complete whatever the client does next (4.x paused*, 5.x stopped*)
    "uploading": DownloadState.COMPLETE, "stalledUP": DownloadState.COMPLETE, "queuedUP": DownloadState.COMPLETE,
    "pausedUP": DownloadState.COMPLETE, "stoppedUP": DownloadState.COMPLETE, "forcedUP": DownloadState.COMPLETE,
    "checkingUP": DownloadState.CHECKING,
    "downloading": DownloadState.DOWNLOADING, "stalledDL": DownloadState.DOWNLOADING,
    "forcedDL": DownloadState.DOWNLOADING,
    "moving": DownloadState.MOVING, "allocating": DownloadState.MOVING,  # allocating: wiki only, not sent by 4.5/5.x
    "metaDL": DownloadState.METADATA, "forcedMetaDL": DownloadState.METADATA,
    "queuedDL": DownloadState.QUEUED,
    "pausedDL": DownloadState.PAUSED, "stoppedDL": DownloadState.PAUSED,
    "checkingDL": DownloadState.CHECKING, "checkingResumeData": DownloadState.CHECKING,
    "error": DownloadState.FAILED, "missingFiles": DownloadState.FAILED,
}

# A seeding-side state below 100 % (some data missing again): what the client is doing with the torrent.
_QBT_SEEDING_SIDE_INCOMPLETE = {"pausedUP": DownloadState.PAUSED, "stoppedUP": DownloadState.PAUSED,
                                "queuedUP": DownloadState.QUEUED}


def qbittorrent_state(state: str, progress: float) -> DownloadState:
    """qBittorrent 4.1-5.2 `state` (+ progress 0..1). A seeding-side state only counts as complete at 100 %."""
    mapped = _QBT.get(state, DownloadState.UNKNOWN)
    if mapped is DownloadState.COMPLETE and progress < 1:
        return _QBT_SEEDING_SIDE_INCOMPLETE.get(state, DownloadState.DOWNLOADING)
    if mapped is DownloadState.UNKNOWN and progress >= 1:
        return DownloadState.COMPLETE
    return mapped


def transmission_state(status: int, percent_done: float, error: int, metadata_percent: float = 1.0) -> DownloadState:
    """Transmission `status` 0-6, `percentDone`, `error` (1 = tracker warning only, not a failure)."""
    if error == 3:  # local error: data missing or unreadable
        return DownloadState.FAILED
    if percent_done >= 1 and status in (0, 5, 6):
        return DownloadState.COMPLETE
    if status in (1, 2):
        return DownloadState.CHECKING
    if status in (3, 5):  # queued to download / to seed (below 100 %: still queued, not transferring)
        return DownloadState.QUEUED
    if status == 4:
        return DownloadState.METADATA if metadata_percent < 1 else DownloadState.DOWNLOADING
    if status == 0:
        return DownloadState.PAUSED
    if status == 6:
        return DownloadState.DOWNLOADING
    return DownloadState.UNKNOWN


# The client lets these transfer: only there does a poll without new bytes mean "no progress".
_STALL_CLOCK_RUNS = frozenset({DownloadState.DOWNLOADING, DownloadState.METADATA})


def counts_toward_stall(state: DownloadState) -> bool:
    """True when the torrent is allowed to download (downloading, stalledDL, forcedDL, Transmission 4, and a
    magnet fetching its metadata), so time without new bytes counts toward DOWNLOAD_STALL_LIMIT_SECONDS.

    Paused/stopped, queued, checking and moving torrents are held by the client (or an admin), not stalled:
    their time does not count. Complete and failed torrents are handled before the stall rule; an unknown
    state is not known to be allowed, so it does not count either (it is polled, never removed as stalled).
    """
    return state in _STALL_CLOCK_RUNS

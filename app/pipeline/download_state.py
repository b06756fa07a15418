"""Download client states mapped onto one vocabulary (reference §12, services.md §2-3)."""
from __future__ import annotations

import enum


class DownloadState(str, enum.Enum):
    DOWNLOADING = "downloading"
    METADATA = "metadata"        # magnet still fetching its metadata
    QUEUED = "queued"
    CHECKING = "checking"
    PAUSED = "paused"
    COMPLETE = "complete"        # every byte is there (the client may be seeding or stopped)
    FAILED = "failed"
    UNKNOWN = "unknown"


_QBT = {
    # seeding side: complete whatever the client does next (4.x paused*, 5.x stopped*)
    "uploading": DownloadState.COMPLETE, "stalledUP": DownloadState.COMPLETE, "queuedUP": DownloadState.COMPLETE,
    "pausedUP": DownloadState.COMPLETE, "stoppedUP": DownloadState.COMPLETE, "forcedUP": DownloadState.COMPLETE,
    "checkingUP": DownloadState.CHECKING,
    "downloading": DownloadState.DOWNLOADING, "stalledDL": DownloadState.DOWNLOADING,
    "forcedDL": DownloadState.DOWNLOADING, "allocating": DownloadState.DOWNLOADING,
    "moving": DownloadState.DOWNLOADING,
    "metaDL": DownloadState.METADATA, "forcedMetaDL": DownloadState.METADATA,
    "queuedDL": DownloadState.QUEUED,
    "pausedDL": DownloadState.PAUSED, "stoppedDL": DownloadState.PAUSED,
    "checkingDL": DownloadState.CHECKING, "checkingResumeData": DownloadState.CHECKING,
    "error": DownloadState.FAILED, "missingFiles": DownloadState.FAILED,
}


def qbittorrent_state(state: str, progress: float) -> DownloadState:
    """qBittorrent 4.1-5.2 `state` (+ progress 0..1). A seeding-side state only counts as complete at 100 %."""
    mapped = _QBT.get(state, DownloadState.UNKNOWN)
    if mapped is DownloadState.COMPLETE and progress < 1:
        return DownloadState.DOWNLOADING
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
    if status == 3:
        return DownloadState.QUEUED
    if status == 4:
        return DownloadState.METADATA if metadata_percent < 1 else DownloadState.DOWNLOADING
    if status == 0:
        return DownloadState.PAUSED
    if status in (5, 6):
        return DownloadState.COMPLETE if percent_done >= 1 else DownloadState.DOWNLOADING
    return DownloadState.UNKNOWN

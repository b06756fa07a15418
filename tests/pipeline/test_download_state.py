"""The download-state maps: each client's states and progress to one DownloadState, by table."""
from __future__ import annotations

import pytest

from app.pipeline.download_state import DownloadState as D
from app.pipeline.download_state import qbittorrent_state, transmission_state

# --- download states ---------------------------------------------------------------------------------

@pytest.mark.parametrize("state,progress,expected", [
    ("uploading", 1, D.COMPLETE), ("stalledUP", 1, D.COMPLETE), ("queuedUP", 1, D.COMPLETE),
    ("pausedUP", 1, D.COMPLETE), ("stoppedUP", 1, D.COMPLETE), ("forcedUP", 1, D.COMPLETE),  # 4.x and 5.x (#57)
    ("checkingUP", 1, D.CHECKING), ("checkingResumeData", 0, D.CHECKING), ("checkingDL", 0.3, D.CHECKING),
    ("downloading", 0.4, D.DOWNLOADING), ("stalledDL", 0, D.DOWNLOADING), ("forcedDL", 0.2, D.DOWNLOADING),
    ("moving", 1, D.MOVING), ("metaDL", 0, D.METADATA), ("forcedMetaDL", 0, D.METADATA),
    ("queuedDL", 0, D.QUEUED), ("pausedDL", 0.5, D.PAUSED), ("stoppedDL", 0.5, D.PAUSED),
    ("error", 0.5, D.FAILED), ("missingFiles", 1, D.FAILED), ("stalledUP", 0.99, D.DOWNLOADING),
    ("somethingNew", 0.2, D.UNKNOWN), ("somethingNew", 1, D.COMPLETE),
])
def test_qbittorrent_states(state, progress, expected):
    assert qbittorrent_state(state, progress) is expected


@pytest.mark.parametrize("status,percent,error,meta,expected", [
    (6, 1, 0, 1, D.COMPLETE), (5, 1, 0, 1, D.COMPLETE), (0, 1, 0, 1, D.COMPLETE),  # stopped after seeding
    (0, 0.86, 0, 1, D.PAUSED), (1, 0, 0, 1, D.CHECKING), (2, 0.5, 0, 1, D.CHECKING), (3, 0, 0, 1, D.QUEUED),
    (4, 0.3, 0, 1, D.DOWNLOADING), (4, 0, 0, 0, D.METADATA), (6, 1, 1, 1, D.COMPLETE),  # tracker warning ≠ failure
    (4, 0.3, 2, 1, D.DOWNLOADING), (0, 0, 3, 1, D.FAILED),
])
def test_transmission_states(status, percent, error, meta, expected):
    assert transmission_state(status, percent, error, meta) is expected

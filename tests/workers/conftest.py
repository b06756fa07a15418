"""Fixtures of the worker-side tests."""
from __future__ import annotations

import pytest

from workers import processors


@pytest.fixture
def own_runs():
    """The ordinary runs of monitor_download (a download's own run, not a poll batch), by job id."""
    runs: list[str] = []
    real = processors.get("monitor_download")

    def counting(payload):
        runs.append(payload["jobId"])
        return real(payload)

    processors.replace("monitor_download", counting)
    yield runs
    processors.replace("monitor_download", real)

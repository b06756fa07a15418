"""Processor registry: job type name → function(payload) -> JSON-safe result. Each module below is named after
the job type it runs (monitor.py runs monitor_download)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

Processor = Callable[[dict], Any]
_PROCESSORS: dict[str, Processor] = {}


def register(job_type: str) -> Callable[[Processor], Processor]:
    """Decorator: `func` processes `job_type`. A job type given a second processor is a ValueError at
    import time, so two modules can never both claim one and the last import win."""
    def decorate(func: Processor) -> Processor:
        if job_type in _PROCESSORS:
            raise ValueError(f"job type {job_type!r} already has a processor ({_PROCESSORS[job_type].__module__})")
        _PROCESSORS[job_type] = func
        return func

    return decorate


def replace(job_type: str, func: Processor) -> Processor:
    """Swap the processor of an already registered `job_type` (a benchmark wraps one to measure it); returns the
    one replaced. Only an explicit call replaces: @register still refuses a second claim."""
    if job_type not in _PROCESSORS:
        raise KeyError(f"job type {job_type!r} has no processor to replace")
    previous, _PROCESSORS[job_type] = _PROCESSORS[job_type], func
    return previous


def get(job_type: str) -> Processor | None:
    return _PROCESSORS.get(job_type)


def registered() -> list[str]:
    return sorted(_PROCESSORS)


# Import the processor modules so their @register decorators run.
from workers.processors import (  # noqa: E402,F401
    cleanup_job_history,
    cleanup_seeded_torrents,
    download_torrent,
    match_plex,
    monitor,
    noop,
    organize_files,
    plex_recently_added_check,
    retry_failed_imports,
    retry_missing_torrents,
    scan_plex,
    search_indexers,
    send_notification,
)

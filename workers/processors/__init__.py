"""Processor registry: job type name → function(payload) -> JSON-safe result (the registry itself:
registry.py; importing this package imports every processor module, so their @register decorators run).
Each module is named after the job type it runs."""
from __future__ import annotations

from workers.processors.registry import _PROCESSORS, Processor, get, register, registered, replace

__all__ = ["_PROCESSORS", "Processor", "get", "register", "registered", "replace"]

# Import the processor modules so their @register decorators run.
from workers.processors import (  # noqa: E402,F401
    cleanup_job_history,
    cleanup_seeded_torrents,
    download_torrent,
    match_plex,
    monitor_download,
    noop,
    organize_files,
    plex_recently_added_check,
    retry_failed_imports,
    retry_missing_torrents,
    scan_plex,
    search_indexers,
    send_notification,
)

"""The registry of job types: queue group, required payload keys, timeout, default priority.

`app` only names processors by job type; the functions themselves live in `workers.processors`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Priority(enum.IntEnum):
    """Higher runs first (the original's Bull numbers were inverted; see docs/design-notes.md)."""

    LOW = 1
    MEDIUM = 5
    HIGH = 10

    @classmethod
    def parse(cls, value: int | str | Priority | None) -> Priority:
        """Map a name ('high'), a Priority, or any int onto the three levels (>=10 high, >=5 medium)."""
        if value is None:
            return cls.MEDIUM
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                raise ValueError(f"unknown priority {value!r}; use high, medium or low") from None
        number = int(value)
        if number >= cls.HIGH:
            return cls.HIGH
        if number >= cls.MEDIUM:
            return cls.MEDIUM
        return cls.LOW


@dataclass(frozen=True)
class JobType:
    name: str
    group: str                      # worker group (pool) that serves it
    required_keys: tuple[str, ...] = ()
    timeout: int = 180              # seconds; RQ job_timeout
    priority: Priority = Priority.MEDIUM
    deprecated: bool = False
    description: str = ""
    final_failure_hook: str = ""    # dotted path of f(request_id, job_type, reason) -> bool, called on a final failure


MAINTENANCE_GROUP = "maintenance"

_REGISTRY: dict[str, JobType] = {}


def register(job_type: JobType) -> JobType:
    """Add a job type (tests add their own diagnostic types). A name registered twice is a ValueError:
    a second definition must never silently replace the first (queue group, timeout)."""
    if job_type.name in _REGISTRY:
        raise ValueError(f"job type {job_type.name!r} is already registered")
    _REGISTRY[job_type.name] = job_type
    return job_type


def get(name: str) -> JobType | None:
    return _REGISTRY.get(name)


def all_types() -> list[JobType]:
    return list(_REGISTRY.values())


def types_in_group(group: str) -> list[JobType]:
    return [t for t in _REGISTRY.values() if t.group == group]


def groups() -> list[str]:
    seen: dict[str, None] = {}
    for job_type in _REGISTRY.values():
        seen.setdefault(job_type.group, None)
    return list(seen)


# A request step's final failure fails its request (called by path: the job system never imports requests).
_FAIL_REQUEST = "app.audiobook_requests.failures.fail_request_for_job"

for _t in (
    JobType("search_indexers", "search_indexers", ("requestId", "audiobook"), 300, Priority.HIGH,
            description="Search Prowlarr for torrents", final_failure_hook=_FAIL_REQUEST),
    JobType("download_torrent", "download_torrent", ("requestId", "audiobook", "torrent"), 300, Priority.HIGH,
            description="Hand the best release to the download client", final_failure_hook=_FAIL_REQUEST),
    JobType("monitor_download", "monitor_download",
            ("requestId", "downloadHistoryId", "downloadClientId", "downloadClient"), 120, Priority.MEDIUM,
            description="Poll download progress", final_failure_hook=_FAIL_REQUEST),
    JobType("organize_files", "organize_files", ("requestId", "audiobookId", "downloadPath"), 3600, Priority.HIGH,
            description="Copy finished files into the media library", final_failure_hook=_FAIL_REQUEST),
    JobType("scan_plex", "scan_plex", (), 1800, Priority.MEDIUM, description="Full Plex library scan and match"),
    JobType("plex_recently_added_check", "plex_recently_added_check", (), 300, Priority.MEDIUM,
            description="Poll Plex's recently added items"),
    JobType("match_plex", MAINTENANCE_GROUP, ("requestId", "audiobookId", "title", "author"), 300, Priority.LOW,
            deprecated=True, description="Fuzzy match one request (deprecated: scan_plex matches)"),
    JobType("retry_missing_torrents", MAINTENANCE_GROUP, (), 600, Priority.MEDIUM,
            description="Re-search requests awaiting a release"),
    JobType("retry_failed_imports", MAINTENANCE_GROUP, (), 600, Priority.MEDIUM,
            description="Re-run imports awaiting retry"),
    JobType("cleanup_seeded_torrents", MAINTENANCE_GROUP, (), 600, Priority.LOW,
            description="Remove torrents that seeded long enough"),
    JobType("cleanup_job_history", MAINTENANCE_GROUP, (), 1800, Priority.LOW,
            description="Trim job history and events older than JOB_HISTORY_DAYS"),
    JobType("send_notification", "send_notification", ("event", "target"), 120, Priority.MEDIUM,
            description="Send one notification to one Apprise target (retried with back-off)"),
    JobType("noop", MAINTENANCE_GROUP, (), 60, Priority.LOW,
            description="Diagnostic: does nothing, logs two events (smoke tests and benchmarks)"),
):
    register(_t)

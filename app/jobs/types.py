"""The registry of job types (queue group, required payload keys, timeout, default priority, final-failure hook)
and of the worker groups that serve them (default size, forked or not): one place for both.

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


class JobKind(enum.StrEnum):
    """The name of every job type registered here. A str enum: `JobKind.SCAN_PLEX == "scan_plex"`, so stored
    rows, payloads and comparisons with plain strings keep working."""

    SEARCH_INDEXERS = "search_indexers"
    DOWNLOAD_TORRENT = "download_torrent"
    MONITOR_DOWNLOAD = "monitor_download"
    ORGANIZE_FILES = "organize_files"
    SCAN_PLEX = "scan_plex"
    PLEX_RECENTLY_ADDED_CHECK = "plex_recently_added_check"
    MATCH_PLEX = "match_plex"
    RETRY_MISSING_TORRENTS = "retry_missing_torrents"
    RETRY_FAILED_IMPORTS = "retry_failed_imports"
    CLEANUP_SEEDED_TORRENTS = "cleanup_seeded_torrents"
    CLEANUP_JOB_HISTORY = "cleanup_job_history"
    SEND_NOTIFICATION = "send_notification"
    NOOP = "noop"


@dataclass(frozen=True, kw_only=True)
class WorkerGroup:
    """A pool of worker processes. `size` is its default process count; `WORKERS_<NAME>` overrides it
    (app/config reads that variable for every declared group). `forked`: each job runs in a forked
    work-horse whatever WORKER_CLASS says (workers/worker.py)."""

    name: str
    size: int
    forked: bool = False

    @property
    def env(self) -> str:
        return f"WORKERS_{self.name.upper()}"


@dataclass(frozen=True, kw_only=True)
class JobType:
    """One job type. Keyword-only, so two ints (timeout, priority) can never be swapped by position."""

    name: str
    group: str                      # the WorkerGroup (declared with declare_group) that serves it
    required_keys: tuple[str, ...] = ()
    timeout: int = 180              # seconds; RQ job_timeout
    priority: Priority = Priority.MEDIUM
    deprecated: bool = False
    description: str = ""
    # Dotted path "module.function" called as function(request_id, job_type, reason) when a run of this type
    # fails for good (a step of a request: the request fails with it). Empty: nothing to call.
    final_failure_hook: str = ""


MAINTENANCE_GROUP = "maintenance"
REQUEST_STEP_FAILED = "app.audiobook_requests.failures.fail_request_for_job"

_GROUPS: dict[str, WorkerGroup] = {}
_REGISTRY: dict[str, JobType] = {}


def declare_group(group: WorkerGroup) -> WorkerGroup:
    """Add a worker group (tests declare their own). A name declared twice is a ValueError."""
    if group.name in _GROUPS:
        raise ValueError(f"worker group {group.name!r} is already declared")
    if group.size < 0:
        raise ValueError(f"worker group {group.name!r}: size must be >= 0, got {group.size}")
    _GROUPS[group.name] = group
    return group


def register(job_type: JobType) -> JobType:
    """Add a job type (tests add their own diagnostic types). A name registered twice is a ValueError:
    a second definition must never silently replace the first (queue group, timeout). So is a group that
    was never declared: it would have no size and no WORKERS_<GROUP> variable."""
    if job_type.name in _REGISTRY:
        raise ValueError(f"job type {job_type.name!r} is already registered")
    if job_type.group not in _GROUPS:
        raise ValueError(f"job type {job_type.name!r}: worker group {job_type.group!r} is not declared "
                         f"(declare_group(WorkerGroup(name=..., size=...)) first)")
    _REGISTRY[job_type.name] = job_type
    return job_type


def get(name: str) -> JobType | None:
    return _REGISTRY.get(name)


def all_types() -> list[JobType]:
    return list(_REGISTRY.values())


def types_in_group(group: str) -> list[JobType]:
    return [t for t in _REGISTRY.values() if t.group == group]


def groups() -> list[str]:
    """The groups that serve at least one registered type, in registration order."""
    seen: dict[str, None] = {}
    for job_type in _REGISTRY.values():
        seen.setdefault(job_type.group, None)
    return list(seen)


def worker_group(name: str) -> WorkerGroup | None:
    return _GROUPS.get(name)


def worker_groups() -> list[WorkerGroup]:
    """Every declared group, in declaration order."""
    return list(_GROUPS.values())


def default_worker_counts() -> dict[str, int]:
    """Each declared group's default process count (before WORKERS_<GROUP>)."""
    return {group.name: group.size for group in _GROUPS.values()}


for _group in (
    WorkerGroup(name="search_indexers", size=3),
    WorkerGroup(name="download_torrent", size=3),
    WorkerGroup(name="monitor_download", size=5),
    WorkerGroup(name="organize_files", size=2),
    WorkerGroup(name="scan_plex", size=1),
    WorkerGroup(name="plex_recently_added_check", size=1),
    # Apprise imports 100+ plugins (about 30 MB): a forked work-horse gives them back when it exits.
    WorkerGroup(name="send_notification", size=1, forked=True),
    WorkerGroup(name=MAINTENANCE_GROUP, size=1),
):
    declare_group(_group)

for _builtin_type in (
    JobType(
        name=JobKind.SEARCH_INDEXERS,
        group="search_indexers",
        required_keys=("requestId", "audiobook"),
        timeout=300,
        priority=Priority.HIGH,
        final_failure_hook=REQUEST_STEP_FAILED,
        description="Search Prowlarr for torrents",
    ),
    JobType(
        name=JobKind.DOWNLOAD_TORRENT,
        group="download_torrent",
        required_keys=("requestId", "audiobook", "torrent"),
        timeout=300,
        priority=Priority.HIGH,
        final_failure_hook=REQUEST_STEP_FAILED,
        description="Hand the best release to the download client",
    ),
    JobType(
        name=JobKind.MONITOR_DOWNLOAD,
        group="monitor_download",
        required_keys=("requestId", "downloadHistoryId", "downloadClientId", "downloadClient"),
        timeout=120,
        priority=Priority.MEDIUM,
        final_failure_hook=REQUEST_STEP_FAILED,
        description="Poll download progress",
    ),
    JobType(
        name=JobKind.ORGANIZE_FILES,
        group="organize_files",
        required_keys=("requestId", "audiobookId", "downloadPath"),
        timeout=3600,
        priority=Priority.HIGH,
        final_failure_hook=REQUEST_STEP_FAILED,
        description="Copy finished files into the media library",
    ),
    JobType(
        name=JobKind.SCAN_PLEX,
        group="scan_plex",
        timeout=1800,
        priority=Priority.MEDIUM,
        description="Full Plex library scan and match",
    ),
    JobType(
        name=JobKind.PLEX_RECENTLY_ADDED_CHECK,
        group="plex_recently_added_check",
        timeout=300,
        priority=Priority.MEDIUM,
        description="Poll Plex's recently added items",
    ),
    JobType(
        name=JobKind.MATCH_PLEX,
        group=MAINTENANCE_GROUP,
        required_keys=("requestId", "audiobookId", "title", "author"),
        timeout=300,
        priority=Priority.LOW,
        deprecated=True,
        description="Fuzzy match one request (deprecated: scan_plex matches)",
    ),
    JobType(
        name=JobKind.RETRY_MISSING_TORRENTS,
        group=MAINTENANCE_GROUP,
        timeout=600,
        priority=Priority.MEDIUM,
        description="Re-search requests awaiting a release",
    ),
    JobType(
        name=JobKind.RETRY_FAILED_IMPORTS,
        group=MAINTENANCE_GROUP,
        timeout=600,
        priority=Priority.MEDIUM,
        description="Re-run imports awaiting retry",
    ),
    JobType(
        name=JobKind.CLEANUP_SEEDED_TORRENTS,
        group=MAINTENANCE_GROUP,
        timeout=600,
        priority=Priority.LOW,
        description="Remove torrents that seeded long enough",
    ),
    JobType(
        name=JobKind.CLEANUP_JOB_HISTORY,
        group=MAINTENANCE_GROUP,
        timeout=1800,
        priority=Priority.LOW,
        description="Trim job history and events older than JOB_HISTORY_DAYS",
    ),
    JobType(
        name=JobKind.SEND_NOTIFICATION,
        group="send_notification",
        required_keys=("event", "target"),
        timeout=120,
        priority=Priority.MEDIUM,
        description="Send one notification to one Apprise target (retried with back-off)",
    ),
    JobType(
        name=JobKind.NOOP,
        group=MAINTENANCE_GROUP,
        timeout=60,
        priority=Priority.LOW,
        description="Diagnostic: does nothing, logs two events (smoke tests and benchmarks)",
    ),
):
    register(_builtin_type)

"""Peewee models: the record of truth for jobs, their events, schedules and the request pipeline.

Columns follow the original schema (snake_case, UUID ids).
"""
from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import ClassVar

import peewee

from app.db import JSONField, database
from app.pipeline.download_state import DownloadState


def utcnow() -> datetime:
    """Naive UTC timestamp (stored without zone on both backends)."""
    return datetime.now(UTC).replace(tzinfo=None)


def status_values(statuses: Iterable[enum.Enum]) -> list[str]:
    """The stored spellings of a set of statuses, sorted (SQL parameters in a stable order)."""
    return sorted(s.value for s in statuses)


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    STUCK = "stuck"
    CANCELLED = "cancelled"

    # The sets the rules read, assigned below the class (in the body they would become members).
    TERMINAL: ClassVar[frozenset[JobStatus]]     # the run ended: no run of this row starts again
    UNFINISHED: ClassVar[frozenset[JobStatus]]   # every other status: a run is waiting, running or retried by RQ
    WAITING: ClassVar[frozenset[JobStatus]]      # a run may start from these (stuck: RQ re-runs it)
    NOT_STARTED: ClassVar[frozenset[JobStatus]]  # queued, no run has started yet
    ERRORED: ClassVar[frozenset[JobStatus]]      # the run failed, or its worker died (the logs' errors filter)
    RETRYABLE: ClassVar[frozenset[JobStatus]]    # an admin's retry starts a new run (stuck: RQ retries it)
    CANCELLABLE: ClassVar[frozenset[JobStatus]]  # an admin's cancel applies: not started yet


JobStatus.TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
JobStatus.UNFINISHED = frozenset(JobStatus) - JobStatus.TERMINAL
JobStatus.WAITING = frozenset({JobStatus.PENDING, JobStatus.DELAYED, JobStatus.STUCK})
JobStatus.NOT_STARTED = frozenset({JobStatus.PENDING, JobStatus.DELAYED})
JobStatus.ERRORED = frozenset({JobStatus.FAILED, JobStatus.STUCK})
JobStatus.RETRYABLE = frozenset({JobStatus.FAILED})
JobStatus.CANCELLABLE = JobStatus.NOT_STARTED

# The stored spellings of JobStatus.TERMINAL, for `Job.status.not_in(...)`.
TERMINAL_JOB_STATUSES = status_values(JobStatus.TERMINAL)


class DownloadStatus(enum.StrEnum):
    """download_history.download_status: the client's state of the torrent while it is monitored
    (DownloadState), then how the row ended."""

    QUEUED = "queued"            # the row's default, before the torrent was added
    DOWNLOADING = "downloading"
    METADATA = "metadata"
    CHECKING = "checking"
    MOVING = "moving"
    PAUSED = "paused"
    UNKNOWN = "unknown"
    COMPLETED = "completed"      # every byte is there (the client's `complete`)
    # finished, and its request let go of it (delete, cancel, an admin's swap): it stays in the client until its
    # indexer's seeding limit, then cleanup_seeded_torrents removes it with its files (app/pipeline/seeding.py)
    SEEDING = "seeding"
    FAILED = "failed"
    REMOVED = "removed"          # taken out of the client (cancel, delete, swap, seeding cleanup)

    # A row in one of these has let go of its torrent and never moves again.
    ENDED: ClassVar[frozenset[DownloadStatus]]

    @classmethod
    def of(cls, state: DownloadState) -> DownloadStatus:
        """The status stored for a client state: the same word, except `complete` is stored `completed`."""
        return cls.COMPLETED if state is DownloadState.COMPLETE else cls(state.value)

    @classmethod
    def _missing_(cls, value: object) -> DownloadStatus | None:
        # Rows written before migration 8 said `complete` for a moment; read them as completed.
        return cls.COMPLETED if value == DownloadState.COMPLETE.value else None


DownloadStatus.ENDED = frozenset({DownloadStatus.FAILED, DownloadStatus.REMOVED})


class BaseModel(peewee.Model):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        legacy_table_names = False


class Audiobook(BaseModel):
    audible_asin = peewee.CharField(null=True, index=True)
    title = peewee.TextField()
    author = peewee.TextField()
    narrator = peewee.TextField(null=True)
    description = peewee.TextField(null=True)
    cover_art_url = peewee.TextField(null=True)
    status = peewee.CharField(default="requested")
    file_path = peewee.TextField(null=True)
    file_format = peewee.CharField(null=True)
    file_size_bytes = peewee.BigIntegerField(null=True)
    plex_guid = peewee.TextField(null=True)
    plex_library_id = peewee.CharField(null=True)
    completed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "audiobooks"


class Request(BaseModel):
    user_id = peewee.CharField(default="admin")
    audiobook = peewee.ForeignKeyField(Audiobook, column_name="audiobook_id", backref="requests",
                                       on_delete="CASCADE")
    status = peewee.CharField(default="pending", index=True)
    progress = peewee.IntegerField(default=0)
    priority = peewee.IntegerField(default=0)
    error_message = peewee.TextField(null=True)
    search_attempts = peewee.IntegerField(default=0)
    download_attempts = peewee.IntegerField(default=0)
    import_attempts = peewee.IntegerField(default=0)
    max_import_retries = peewee.IntegerField(default=5)
    last_search_at = peewee.DateTimeField(null=True)
    # While awaiting_search: when retry_missing_torrents searches again (back-off per request, migration 9).
    next_search_at = peewee.DateTimeField(null=True)
    # Searches in a row that found nothing usable: the back-off of the next one (migration 10).
    fruitless_searches = peewee.IntegerField(default=0)
    last_import_at = peewee.DateTimeField(null=True)
    completed_at = peewee.DateTimeField(null=True)
    # app/library/book_identity.py: unique among active requests (migration 12); NULL on rows made before it
    # that repeated an active book, and on rows not made by create_request.
    book_key = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "requests"


class Job(BaseModel):
    request = peewee.ForeignKeyField(Request, column_name="request_id", null=True, backref="jobs",
                                     on_delete="SET NULL")
    rq_job_id = peewee.CharField(null=True, unique=True)
    # indexed by (type, status, created_at) and (status, heartbeat_at), and partially (migration 7)
    type = peewee.CharField()
    status = peewee.CharField(default=JobStatus.PENDING.value)
    priority = peewee.IntegerField(default=0)
    attempts = peewee.IntegerField(default=0)
    max_attempts = peewee.IntegerField(default=3)
    payload = JSONField(null=True)
    result = JSONField(null=True)
    error_message = peewee.TextField(null=True)
    stack_trace = peewee.TextField(null=True)
    scheduled_job_id = peewee.UUIDField(null=True, index=True)
    polls = peewee.IntegerField(default=0)          # reschedules of a polling job (monitor_download)
    polling = peewee.BooleanField(default=False)    # waiting for its next poll: the next run is no new attempt
    run_at = peewee.DateTimeField(null=True)
    started_at = peewee.DateTimeField(null=True)
    completed_at = peewee.DateTimeField(null=True)
    # Fencing: each run writes a fresh token when it starts; every later write of that run requires it,
    # so a run that lost its lease (paused, partitioned) never writes after its successor.
    run_token = peewee.CharField(null=True)
    # The run's lease in the record of truth (renewed by the worker's heartbeat): survives a Redis loss.
    heartbeat_at = peewee.DateTimeField(null=True)
    # A failed row retried by an admin (or "requeue failed") points at the new run; claimed once.
    retried_at = peewee.DateTimeField(null=True)
    retry_job_id = peewee.UUIDField(null=True)

    class Meta:
        table_name = "jobs"
        indexes = ((("created_at",), False), (("type", "status", "created_at"), False))

    @property
    def is_terminal(self) -> bool:
        return self.status in JobStatus.TERMINAL

    @property
    def can_retry(self) -> bool:
        """An admin's retry applies: the row failed and was not retried yet (each starts one new run)."""
        return self.status in JobStatus.RETRYABLE and self.retried_at is None

    @classmethod
    def retryable(cls) -> peewee.Expression:
        """`can_retry` as a WHERE clause."""
        return cls.status.in_(status_values(JobStatus.RETRYABLE)) & cls.retried_at.is_null()

    @property
    def can_cancel(self) -> bool:
        """An admin's cancel applies: the run has not started."""
        return self.status in JobStatus.CANCELLABLE


class JobEvent(BaseModel):
    job = peewee.ForeignKeyField(Job, column_name="job_id", backref="events", on_delete="CASCADE", index=True)
    level = peewee.CharField()
    context = peewee.CharField()
    message = peewee.TextField()
    metadata = JSONField(null=True)

    class Meta:
        table_name = "job_events"
        indexes = ((("created_at",), False), (("level", "created_at"), False))


class ScheduledJob(BaseModel):
    name = peewee.CharField()
    type = peewee.CharField(index=True)
    schedule = peewee.CharField()
    enabled = peewee.BooleanField(default=True, index=True)
    payload = JSONField(default=dict)
    last_run = peewee.DateTimeField(null=True)
    last_run_job_id = peewee.UUIDField(null=True)
    next_run = peewee.DateTimeField(null=True)
    # Who last set `enabled`: "admin" (the API or the page) or "system" (the defaults, following the
    # configuration); NULL on rows from before migration 6. An admin's choice is never overridden.
    enabled_changed_by = peewee.CharField(null=True)

    class Meta:
        table_name = "scheduled_jobs"


class DownloadHistory(BaseModel):
    request = peewee.ForeignKeyField(Request, column_name="request_id", backref="downloads", on_delete="CASCADE")
    indexer_name = peewee.CharField(null=True)
    torrent_name = peewee.TextField(null=True)
    torrent_hash = peewee.CharField(null=True, index=True)
    torrent_size_bytes = peewee.BigIntegerField(null=True)
    magnet_link = peewee.TextField(null=True)
    torrent_url = peewee.TextField(null=True)
    seeders = peewee.IntegerField(null=True)
    leechers = peewee.IntegerField(null=True)
    quality_score = peewee.IntegerField(null=True)
    selected = peewee.BooleanField(default=False)
    download_client = peewee.CharField(null=True)
    download_client_id = peewee.CharField(null=True)
    download_status = peewee.CharField(default=DownloadStatus.QUEUED.value)
    download_error = peewee.TextField(null=True)
    download_path = peewee.TextField(null=True)
    started_at = peewee.DateTimeField(null=True)
    completed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "download_history"


class PlexLibrary(BaseModel):
    plex_guid = peewee.CharField(unique=True)
    plex_rating_key = peewee.CharField(null=True)
    title = peewee.TextField()
    author = peewee.TextField(null=True)
    narrator = peewee.TextField(null=True)
    summary = peewee.TextField(null=True)
    duration = peewee.BigIntegerField(null=True)
    year = peewee.IntegerField(null=True)
    user_rating = peewee.FloatField(null=True)
    file_path = peewee.TextField(null=True)
    thumb_url = peewee.TextField(null=True)
    plex_library_id = peewee.CharField(null=True)
    asin = peewee.CharField(null=True, index=True)
    added_at = peewee.DateTimeField(null=True)
    last_scanned_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "plex_library"


class BlockedRelease(BaseModel):
    """A release that failed for a request (stalled, client error, swapped, a terminal import warning): later
    searches skip it. Written only by app/audiobook_requests/blocklist.py."""

    request = peewee.ForeignKeyField(Request, column_name="request_id", backref="blocked_releases",
                                     on_delete="CASCADE")
    title = peewee.TextField()
    info_hash = peewee.CharField(null=True)
    indexer = peewee.CharField(null=True)  # migration 9
    reason = peewee.TextField()

    class Meta:
        table_name = "blocked_releases"
        indexes = ((("request", "title"), True),)


class PausedQueue(peewee.Model):
    """A job type whose queues workers skip (migration 15). The record of truth for Pause/Resume; Redis holds a
    mirror the workers read in their dequeue (app/jobs/pausing.py). Written only by app/jobs/pausing.py."""

    job_type = peewee.CharField(primary_key=True)
    paused_by = peewee.CharField()
    paused_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "paused_queues"


class StoredSetting(peewee.Model):
    """An admin's value for one setting of app.config.ADMIN_SETTING_NAMES, as typed (migration 13). Written only
    by app/settings_store.py; the environment still wins over it."""

    key = peewee.CharField(primary_key=True)  # the environment variable's name, e.g. PROWLARR_URL
    value = peewee.TextField()
    updated_at = peewee.DateTimeField(default=utcnow)
    updated_by = peewee.CharField()

    class Meta:
        database = database
        table_name = "settings"


class SettingsState(peewee.Model):
    """One row (id 1): the settings version every process compares with the one it applied (each save adds
    one), and whether the first-run setup (/admin/setup) was finished (migration 13)."""

    id = peewee.IntegerField(primary_key=True)
    version = peewee.IntegerField(default=0)
    setup_finished_at = peewee.DateTimeField(null=True)
    setup_finished_by = peewee.CharField(null=True)

    class Meta:
        database = database
        table_name = "settings_state"


class SettingsChange(BaseModel):
    """The history of settings changes: who, which setting, when, and the new value (never a secret's:
    `shown` says only that it was set or cleared)."""

    changed_by = peewee.CharField()
    name = peewee.CharField()
    shown = peewee.TextField()

    class Meta:
        table_name = "settings_changes"
        indexes = ((("created_at",), False),)


class SchemaMigration(peewee.Model):
    version = peewee.IntegerField(primary_key=True)
    name = peewee.CharField()
    applied_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "schema_migrations"


class NotificationTarget(BaseModel):
    """An Apprise URL and the events it is sent (migration 14; app/notifications/). The URL carries tokens:
    pages and answers show it redacted (app/notifications/targets.py)."""
    url = peewee.TextField()
    events = JSONField(default=list)  # event names (app/notifications/targets.py EVENTS)

    class Meta:
        table_name = "notification_targets"


ALL_MODELS: list[type[peewee.Model]] = [
    Audiobook, Request, Job, JobEvent, ScheduledJob, DownloadHistory, PlexLibrary, BlockedRelease, PausedQueue,
    StoredSetting, SettingsState, SettingsChange, NotificationTarget]
SETTINGS_MODELS: list[type[peewee.Model]] = [StoredSetting, SettingsState, SettingsChange]  # migration 13

"""The status vocabularies of the record of truth: jobs, requests, downloads, audiobooks, and the client's state of
a torrent. Imports nothing of the project, so every layer can name a status (tests/architecture/test_layers.py).

The named sets the rules read live with their enum; the transitions between request statuses stay with their one
writer (app/audiobook_requests/state.py), those of jobs with theirs (app/jobs/state.py).
"""
from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import ClassVar


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


class DownloadState(enum.StrEnum):
    DOWNLOADING = "downloading"  # allowed to transfer (with or without peers)
    METADATA = "metadata"        # magnet still fetching its metadata, allowed to
    QUEUED = "queued"            # waiting for a slot in the client's queue
    CHECKING = "checking"        # verifying data (after an add, a restart or a recheck)
    MOVING = "moving"            # local disk work: files being moved (or allocated)
    PAUSED = "paused"            # paused (4.x) / stopped (5.x, Transmission) by someone
    COMPLETE = "complete"        # every byte is there (the client may be seeding or stopped)
    FAILED = "failed"
    UNKNOWN = "unknown"


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


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    SEARCHING = "searching"
    AWAITING_SEARCH = "awaiting_search"
    DOWNLOADING = "downloading"
    PROCESSING = "processing"
    DOWNLOADED = "downloaded"
    AVAILABLE = "available"
    FAILED = "failed"
    CANCELLED = "cancelled"
    AWAITING_IMPORT = "awaiting_import"
    WARN = "warn"
    DELETED = "deleted"  # soft delete by an admin: row and timeline kept, hidden by default; never left


# A request in one of these has let go of its torrent (an unfinished one removed, a finished one left seeding
# until its indexer's limit: app/audiobook_requests/torrents.py) ...
RELEASED_TORRENT = frozenset({RequestStatus.CANCELLED, RequestStatus.FAILED, RequestStatus.DELETED})
# ... and in these it is finished with its torrent (an available one only once it seeded long enough).
FINISHED_WITH_TORRENT = RELEASED_TORRENT | {RequestStatus.AVAILABLE}


class AudiobookStatus(enum.StrEnum):
    """audiobooks.status: where the book's files are. Nothing decides on it (a request's status does); it says on
    the row what was last done to the book."""

    REQUESTED = "requested"  # the row's default: a request asked for it
    COMPLETED = "completed"  # imported into the library (app/audiobook_requests/imports.py)
    AVAILABLE = "available"  # found in Plex (workers/processors/scan_plex.py)

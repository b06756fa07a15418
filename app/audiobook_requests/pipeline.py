"""The request pipeline as data: each step's job type, the in-progress request status it works in, the
priority it is started with, and the builder of its payload.

Every place that starts a step builds its payload here: the requests API (service.enqueue_search, an
admin's retry of the import), the processor that chains the next step (search_indexers → download_torrent →
monitor_download → organize_files) and the reconciler's re-run of a stranded request. A change to a step's
payload is made once; tests/audiobook_requests/test_pipeline_steps.py checks that every builder satisfies its
job type's required keys and that the mappings below agree with the registry.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.audiobook_requests.state import R, RequestStatus
from app.jobs.types import JobKind, Priority
from app.pipeline.release_search import download_payload


@dataclass(frozen=True)
class Book:
    """The `audiobook` part of search and download payloads."""
    id: str
    title: str
    author: str
    asin: str | None = None

    @classmethod
    def of(cls, audiobook: Any) -> Book:
        """From an Audiobook row."""
        return cls(str(audiobook.id), audiobook.title, audiobook.author, audiobook.audible_asin)

    def to_payload(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "author": self.author, "asin": self.asin}


def search_payload(request_id: str, book: Book, **markers: Any) -> dict[str, Any]:
    """search_indexers: the request and its book."""
    return {"requestId": request_id, "audiobook": book.to_payload(), **markers}


def monitor_payload(request_id: str, download_history_id: str, client_id: str, client: str,
                    **markers: Any) -> dict[str, Any]:
    """monitor_download: the download_history row and the torrent in the client (its info hash, which client)."""
    return {"requestId": request_id, "downloadHistoryId": download_history_id, "downloadClientId": client_id,
            "downloadClient": client, **markers}


def organize_payload(request_id: str, audiobook_id: str, download_path: str, **markers: Any) -> dict[str, Any]:
    """organize_files: the finished download's path as the client reports it."""
    return {"requestId": request_id, "audiobookId": audiobook_id, "downloadPath": download_path, **markers}


@dataclass(frozen=True)
class Step:
    kind: JobKind
    status: RequestStatus            # the in-progress status the step works in
    priority: Priority | None        # the priority the pipeline starts it with (None: the type's default)
    build: Callable[..., dict[str, Any]]  # its payload builder


STEPS: tuple[Step, ...] = (
    Step(JobKind.SEARCH_INDEXERS, R.SEARCHING, Priority.HIGH, search_payload),
    # app/pipeline/release_search.download_payload: the search's ranking shapes its torrent entries
    Step(JobKind.DOWNLOAD_TORRENT, R.DOWNLOADING, Priority.HIGH, download_payload),
    Step(JobKind.MONITOR_DOWNLOAD, R.DOWNLOADING, None, monitor_payload),
    Step(JobKind.ORGANIZE_FILES, R.PROCESSING, Priority.HIGH, organize_payload),
)
STEP_BY_KIND: dict[str, Step] = {step.kind: step for step in STEPS}

# The status a pipeline step works in: the final-failure hook fails a request only from it (failures.py), an
# admin's retry of the step's job re-enters it (state.reenter_step_for_retry).
STEP_STATUS: dict[str, RequestStatus] = {step.kind: step.status for step in STEPS}

# In-progress request status → the step that re-runs it when the request is stranded (the reconciler; a
# downloading request resumes its monitor when a download is recorded, see repair_rules._resume_download).
RERUN_STEP: dict[str, JobKind] = {
    R.PENDING.value: JobKind.SEARCH_INDEXERS,
    R.SEARCHING.value: JobKind.SEARCH_INDEXERS,
    R.DOWNLOADING.value: JobKind.DOWNLOAD_TORRENT,
    R.PROCESSING.value: JobKind.ORGANIZE_FILES,
}


def step(kind: str) -> Step:
    """The step of job type `kind` (KeyError for a type that is no step of a request)."""
    return STEP_BY_KIND[kind]

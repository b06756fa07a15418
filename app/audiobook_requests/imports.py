"""An import's write to its audiobook (organize_files): where the book now lives in the library.

Fenced like every write of a job's run (app/jobs/fence.py), in the same statement: an import frozen past its
lease and resumed after its successor imported the book (and the Plex matcher moved it on to `available`) never
turns it back to `completed` nor rewrites its path and time.
"""
from __future__ import annotations

from typing import Any

from app.jobs import fence
from app.models import Audiobook, utcnow
from app.statuses import AudiobookStatus


def record_import(book_id: Any, *, file_path: str, file_format: str) -> bool:
    """The book is in the library at `file_path`; False when the run lost its job (nothing written)."""
    now = utcnow()
    return (Audiobook.update(file_path=file_path, status=AudiobookStatus.COMPLETED.value, completed_at=now,
                             file_format=file_format, updated_at=now)
            .where((Audiobook.id == book_id) & fence.holds_lease()).execute()) == 1

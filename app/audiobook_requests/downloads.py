"""The one module that writes download_history from a job's run (a download's record and its state).

Like job state (app/jobs/state.py) and request status (app/audiobook_requests/state.py), every write is one
statement that carries the run's fence in its own WHERE (app/jobs/fence.py: `holds_lease`, `insert_if_holding`):
a run frozen past its lease (paused, partitioned) and resumed after its successor writes nothing, not the record
of the download it added, not a stale client state over `completed`, not the end of a download its successor
is still watching. Outside a run (an admin's action, tests) the fence is true.

Each writer returns whether the row was written; a caller that finds it refused asks `fence.ensure_current()`
whether its run lost the lease (LeaseLost) or the row had simply moved on.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.jobs import fence
from app.models import DownloadHistory, DownloadStatus, utcnow

# A row the monitor may still write a client state into: not finished, not let go. `completed` is final for
# the monitor too: a stale poll never turns it back into `downloading`, after which seeding cleanup would
# never select it.
SETTLED = [status.value for status in (*DownloadStatus.ENDED, DownloadStatus.COMPLETED, DownloadStatus.SEEDING)]


def record_download(request_id: Any, **fields: Any) -> uuid.UUID | None:
    """download_torrent's record of the torrent it handed to the client (`fields`: the DownloadHistory columns).
    The new row's id, or None when the run no longer holds its job (nothing was written)."""
    now = utcnow()
    row_id = uuid.uuid4()
    values: dict[str, Any] = {"id": row_id, "created_at": now, "updated_at": now, "request": request_id,
                              "selected": False, "download_status": DownloadStatus.QUEUED.value, **fields}
    return row_id if fence.insert_if_holding(DownloadHistory, values) else None


def _update(history_id: Any, condition: Any = None, **values: Any) -> bool:
    where = (DownloadHistory.id == history_id) & fence.holds_lease()
    if condition is not None:
        where &= condition
    return DownloadHistory.update(updated_at=utcnow(), **values).where(where).execute() == 1


def set_client_state(history_id: Any, status: DownloadStatus) -> bool:
    """A poll's reading of the client (downloading, paused, checking ...): only into a row still being
    downloaded. The ends (completed, failed) have their own writers, which record why and where."""
    if status.value in SETTLED:
        raise ValueError(f"{status.value} is an end of a download, not a client state")
    return _update(history_id, DownloadHistory.download_status.not_in(SETTLED), download_status=status.value)


def mark_completed(history_id: Any, download_path: str) -> bool:
    """Every byte is there: the row keeps where the client put them (the import reads them from there)."""
    return _update(history_id, DownloadHistory.download_status.not_in(SETTLED),
                   download_status=DownloadStatus.COMPLETED.value, completed_at=utcnow(), download_path=download_path)


def mark_failed(history_id: Any, error: str) -> bool:
    """The download ended in failure (stalled, the client's error, lost): claims the end of the row, so a caller
    removes the torrent or blocklists its release only once this landed."""
    return _update(history_id, DownloadHistory.download_status.not_in([s.value for s in DownloadStatus.ENDED]),
                   download_status=DownloadStatus.FAILED.value, download_error=error)


def mark_removed(history_id: Any) -> bool:
    """The torrent was taken out of the client (cancel, delete, swap, seeding cleanup)."""
    return _update(history_id, download_status=DownloadStatus.REMOVED.value)


def mark_seeding(history_id: Any, *, completed_at: datetime, download_path: str | None) -> bool:
    """Finished, and its request let go of it: it stays in the client until its indexer's seeding limit."""
    return _update(history_id, download_status=DownloadStatus.SEEDING.value, completed_at=completed_at,
                   download_path=download_path)


def set_client_states_of_polls(polls: list[tuple[Any, DownloadStatus, str, str]]) -> int:
    """set_client_state for the downloads of a poll batch (workers/poll_batch.py; PostgreSQL), in one statement:
    each (history id, status, job id, token) lands only into a row still being downloaded and while the job's
    row is still active with that run's token; an unchanged status is not written again. Returns rows written."""
    if not polls:
        return 0
    from app.db import database

    values = ", ".join(["(%s::uuid, %s, %s::uuid, %s)"] * len(polls))
    settled = ", ".join(["%s"] * len(SETTLED))
    sql = (f"UPDATE download_history SET download_status = v.status, updated_at = %s "
           f"FROM (VALUES {values}) AS v(id, status, job_id, token), jobs "
           f"WHERE download_history.id = v.id AND download_history.download_status NOT IN ({settled}) "
           f"AND download_history.download_status IS DISTINCT FROM v.status "
           f"AND jobs.id = v.job_id AND jobs.status = 'active' AND jobs.run_token = v.token")
    params: list[Any] = [utcnow()]
    for history_id, status, job_id, token in polls:
        if status.value in SETTLED:
            raise ValueError(f"{status.value} is an end of a download, not a client state")
        params += [str(history_id), status.value, job_id, token]
    params += SETTLED
    return database.obj.execute_sql(sql, params).rowcount

"""Pause and Resume of a job type's queues: the one writer of paused_queues and of its Redis mirror.

PostgreSQL holds which types are paused (the record of truth, so a Redis restart or FLUSH never unpauses
anything). Workers read a mirror in Redis inside their one-round-trip dequeue (app/jobs/dequeue.py): the
set PAUSED_KEY holds the paused type names plus the member MIRROR_LOADED. A set without that member
(Redis lost it) is "not loaded": the dequeue pops nothing and the worker loads the mirror from the table
(`load_mirror`) before its next try, so no paused job slips through while Redis is being refilled.

Every write of the table rewrites the whole mirror in the same transaction, under a PostgreSQL advisory
lock, so two admins pausing and resuming at once leave Redis exactly as the table.
"""
from __future__ import annotations

from typing import Any

from app.db import database
from app.errors import AppError
from app.jobs import types
from app.models import PausedQueue, utcnow

PAUSED_KEY = "rmab:queues:paused"
MIRROR_LOADED = "*"  # never a job type's name
_LOCK_ID = 0x524D4142_0F  # pg_advisory_xact_lock key of the mirror's writers ("RMAB", 15)


class PauseError(AppError):
    """An unknown job type (404)."""

    status = 404


def paused_types() -> dict[str, dict[str, Any]]:
    """{job type: {pausedBy, pausedAt}} from the table."""
    return {row.job_type: {"pausedBy": row.paused_by, "pausedAt": row.paused_at.isoformat() + "Z"}
            for row in PausedQueue.select().order_by(PausedQueue.job_type)}


def _known(job_type: str) -> str:
    if types.get(job_type) is None:
        raise PauseError(f"unknown job type {job_type!r}")
    return job_type


def _lock_writers() -> None:
    db = database.obj
    if db.param == "%s":  # PostgreSQL; SQLite serialises its writers itself
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))


def _write_mirror(connection: Any, names: list[str]) -> None:
    with connection.pipeline(transaction=True) as batch:
        batch.delete(PAUSED_KEY)
        batch.sadd(PAUSED_KEY, MIRROR_LOADED, *names)
        batch.execute()


def load_mirror(connection: Any) -> list[str]:
    """Copy the table into Redis (a worker found the mirror missing, or a write changed the table)."""
    with database.obj.atomic():
        _lock_writers()
        names = [row.job_type for row in PausedQueue.select(PausedQueue.job_type)]
        _write_mirror(connection, names)
    return names


def pause(job_type: str, by: str, connection: Any) -> bool:
    """Pause a job type: its workers stop taking its jobs (a running one finishes). False when it already was."""
    _known(job_type)
    with database.obj.atomic():
        _lock_writers()
        already = PausedQueue.select().where(PausedQueue.job_type == job_type).exists()
        if not already:
            PausedQueue.create(job_type=job_type, paused_by=by[:200], paused_at=utcnow())
        _write_mirror(connection, [row.job_type for row in PausedQueue.select(PausedQueue.job_type)])
    return not already


def resume(job_type: str, connection: Any) -> bool:
    """Resume a paused job type. False when it was not paused."""
    _known(job_type)
    with database.obj.atomic():
        _lock_writers()
        removed = PausedQueue.delete().where(PausedQueue.job_type == job_type).execute()
        _write_mirror(connection, [row.job_type for row in PausedQueue.select(PausedQueue.job_type)])
    return removed == 1

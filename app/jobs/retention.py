"""Retention: count-based in Redis (like Bull's removeOnComplete/removeOnFail), age-based in the database."""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from rq.registry import FailedJobRegistry, FinishedJobRegistry

from app.jobs.queues import queue_names_for_type
from app.models import TERMINAL_JOB_STATUSES, Job, JobEvent, utcnow

log = logging.getLogger(__name__)
_BATCH = 500


def _keep_limit(finished: bool) -> int:
    from app.config import get_settings

    settings = get_settings()
    return settings.redis_keep_completed if finished else settings.redis_keep_failed


def _retention_key(job_type: str, finished: bool) -> str:
    return f"rmab:retention:{'finished' if finished else 'failed'}:{job_type}"


def trim_redis(connection: Any, job_type: str, rq_job_id: str, *, finished: bool) -> int:
    """Record `rq_job_id` as the newest finished (or failed) RQ job of `job_type`; delete the oldest
    beyond the limit, across the type's priority queues. Returns how many were deleted.

    RQ's own registries score by whole seconds (ties), so the order lives in a sorted set of ours,
    scored by a precise clock. One pipelined round trip when nothing needs trimming.
    """
    keep = max(_keep_limit(finished), 1)
    key = _retention_key(job_type, finished)
    with connection.pipeline() as pipe:
        pipe.zadd(key, {rq_job_id: time.time()})
        pipe.zcard(key)
        _, total = pipe.execute()
    if total <= keep:
        return 0
    doomed = [m.decode() if isinstance(m, bytes) else m for m in connection.zrange(key, 0, total - keep - 1)]
    registry_class = FinishedJobRegistry if finished else FailedJobRegistry
    registry_keys = [registry_class(name, connection=connection).key for name in queue_names_for_type(job_type)]
    with connection.pipeline() as pipe:
        pipe.zrem(key, *doomed)
        for registry_key in registry_keys:
            pipe.zrem(registry_key, *doomed)
        for job_id in doomed:
            pipe.delete(f"rq:job:{job_id}", f"rq:results:{job_id}", f"rq:executions:{job_id}")
        pipe.execute()
    return len(doomed)


def cleanup_job_history(days: int, now: Any = None) -> dict[str, int]:
    """Delete finished jobs older than `days` and their events, in batches. Active work is never touched."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    jobs_deleted = events_deleted = 0
    while True:
        ids = [row.id for row in Job.select(Job.id)
               .where((Job.created_at < cutoff) & Job.status.in_(TERMINAL_JOB_STATUSES)).limit(_BATCH)]
        if not ids:
            break
        with Job._meta.database.atomic():
            events_deleted += JobEvent.delete().where(JobEvent.job.in_(ids)).execute()
            jobs_deleted += Job.delete().where(Job.id.in_(ids)).execute()
    return {"jobsDeleted": jobs_deleted, "eventsDeleted": events_deleted, "cutoff": cutoff.isoformat() + "Z"}

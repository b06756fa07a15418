"""Queue statistics for /admin/queues and /metrics, read from Redis without triggering RQ's cleanup
(cleanup from a web thread fails: RQ's callback timeout needs the main thread), and the
failed jobs "requeue failed" acts on, read from the database (the record of truth)."""
from __future__ import annotations

import time
from typing import Any

from peewee import fn
from rq.job import Job as RQJob
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from app.audiobook_requests.job_retries import requeueable_failed
from app.jobs import types
from app.jobs.queues import get_queue, queue_names_for_type
from app.models import Job


def queue_stats(connection: Any, live_workers: dict[str, int], configured: dict[str, int]) -> list[dict]:
    """Per job type: counts in Redis, the oldest waiting job's age, live and configured workers, and whether an
    admin paused it (`paused`: {pausedBy, pausedAt} from the table, or None)."""
    from app.jobs.pausing import paused_types

    paused = paused_types()
    rows = []
    now = time.time()
    for job_type in types.all_types():
        waiting = active = delayed = failed = 0
        oldest: float | None = None
        for name in queue_names_for_type(job_type.name):
            queue = get_queue(name, connection)
            count = queue.count
            waiting += count
            active += StartedJobRegistry(name, connection=connection).get_job_count(cleanup=False)
            delayed += ScheduledJobRegistry(name, connection=connection).get_job_count(cleanup=False)
            failed += FailedJobRegistry(name, connection=connection).get_job_count(cleanup=False)
            if count:
                first = connection.lindex(queue.key, 0)
                if first:
                    try:
                        enqueued = RQJob.fetch(first.decode(), connection=connection).enqueued_at
                        if enqueued:
                            age = now - enqueued.timestamp()
                            oldest = max(oldest or 0.0, age)
                    except Exception:
                        pass
        rows.append({"type": job_type.name, "group": job_type.group, "waiting": waiting, "active": active,
                     "delayed": delayed, "failed": failed,
                     "oldestWaitingSeconds": round(oldest, 1) if oldest is not None else None,
                     "liveWorkers": live_workers.get(job_type.group, 0),
                     "configuredWorkers": configured.get(job_type.group, 1), "paused": paused.get(job_type.name)})
    return rows


def requeueable_failed_counts() -> dict[str, int]:
    """Per job type, the failed jobs "requeue failed" would start again (not yet retried; see
    app/audiobook_requests/job_retries.py): the number the queues page shows on its button."""
    query = requeueable_failed().select(Job.type, fn.COUNT(Job.id)).group_by(Job.type)
    return {job_type: count for job_type, count in query.tuples()}

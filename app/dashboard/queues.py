"""Queue statistics for /admin/queues and /metrics, read from Redis without triggering RQ's cleanup
(cleanup from a web thread fails: RQ's callback timeout needs the main thread; rq-notes §1)."""
from __future__ import annotations

import time
from typing import Any

from rq.job import Job as RQJob
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from app.jobs import types
from app.jobs.queues import get_queue, queue_names_for_type


def queue_stats(connection: Any, live_workers: dict[str, int], configured: dict[str, int]) -> list[dict]:
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
                     "configuredWorkers": configured.get(job_type.group, 1)})
    return rows

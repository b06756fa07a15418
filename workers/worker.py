"""RQ worker classes used by the pools.

JobWorker (default) runs jobs in its own process (RQ SimpleWorker: no fork per job, ~4x the
throughput and ~1/4 the start latency of forking). RQ's SimpleWorker only renews a job's
StartedJobRegistry entry once, with TTL job_timeout + 60 s, so a SIGKILLed worker would be noticed
only minutes later; JobWorker renews it from a heartbeat thread with a short TTL instead
(JOB_HEARTBEAT_TTL, default 30 s), so an abandoned job is detected within about 30-40 s.

ForkJobWorker (WORKER_CLASS=fork) keeps RQ's fork-per-job isolation and records a work-horse that
dies under a living worker, which RQ reports to no callback.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from rq import SimpleWorker, Worker

from app.config import get_settings
from app.jobs.callbacks import on_work_horse_killed

log = logging.getLogger(__name__)


def _worker_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    kwargs.setdefault("worker_ttl", settings.worker_ttl)
    kwargs.setdefault("maintenance_interval", settings.worker_maintenance_interval)
    kwargs.setdefault("work_horse_killed_handler", on_work_horse_killed)
    return kwargs


class JobWorker(SimpleWorker):
    def __init__(self, queues: Any, *args: Any, **kwargs: Any):
        super().__init__(queues, *args, **_worker_defaults(kwargs))
        self.job_heartbeat_ttl = get_settings().job_heartbeat_ttl

    def get_heartbeat_ttl(self, job: Any) -> int:
        return self.job_heartbeat_ttl

    def execute_job(self, job: Any, queue: Any) -> None:
        stop = threading.Event()
        beat = threading.Thread(target=self._beat_while_running, args=(job, stop), daemon=True,
                                name=f"heartbeat-{job.id}")
        beat.start()
        try:
            super().execute_job(job, queue)
        finally:
            stop.set()
            beat.join(timeout=5)

    def _beat_while_running(self, job: Any, stop: threading.Event) -> None:
        interval = max(self.job_heartbeat_ttl / 3, 1)
        while not stop.wait(interval):
            try:
                if self.execution is not None:
                    self.maintain_heartbeats(job)
            except Exception:  # a missed beat is retried; the job itself must not be disturbed
                log.exception("heartbeat for job %s failed", job.id)


class ForkJobWorker(Worker):
    def __init__(self, queues: Any, *args: Any, **kwargs: Any):
        kwargs.setdefault("job_monitoring_interval", 10)
        super().__init__(queues, *args, **_worker_defaults(kwargs))


def worker_class() -> type[Worker] | type[SimpleWorker]:
    return ForkJobWorker if get_settings().worker_class == "fork" else JobWorker

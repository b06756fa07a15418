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
from app.jobs import fence
from app.jobs.callbacks import on_work_horse_killed
from app.jobs.rqqueue import JobQueue

log = logging.getLogger(__name__)


def _worker_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    kwargs.setdefault("worker_ttl", settings.worker_ttl)
    kwargs.setdefault("maintenance_interval", settings.worker_maintenance_interval)
    kwargs.setdefault("work_horse_killed_handler", on_work_horse_killed)
    kwargs.setdefault("queue_class", JobQueue)
    return kwargs


class JobWorker(SimpleWorker):
    def __init__(self, queues: Any, *args: Any, **kwargs: Any):
        super().__init__(queues, *args, **_worker_defaults(kwargs))
        self.job_heartbeat_ttl = get_settings().job_heartbeat_ttl
        self._running_job: Any = None
        self._heartbeat_wakeup = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None

    def get_heartbeat_ttl(self, job: Any) -> int:
        return self.job_heartbeat_ttl

    def execute_job(self, job: Any, queue: Any) -> None:
        if self._heartbeat_thread is None or not self._heartbeat_thread.is_alive():
            # One thread for the worker's life (a thread per job costs more than a no-op job).
            self._heartbeat_thread = threading.Thread(target=self._beat_forever, daemon=True,
                                                      name=f"heartbeat-{self.name}")
            self._heartbeat_thread.start()
        self._running_job = job
        try:
            super().execute_job(job, queue)
        finally:
            self._running_job = None
            fence.end()  # whatever happened in RQ's bookkeeping, this run's lease is no longer renewed

    def _beat_forever(self) -> None:
        interval = max(self.job_heartbeat_ttl / 3, 1)
        while True:
            self._heartbeat_wakeup.wait(interval)
            job = self._running_job
            if job is None or self.execution is None:
                continue
            try:
                self.maintain_heartbeats(job)
            except Exception:  # a missed beat is retried; the job itself must not be disturbed
                log.exception("heartbeat for job %s failed", job.id)


class ForkJobWorker(Worker):
    def __init__(self, queues: Any, *args: Any, **kwargs: Any):
        kwargs.setdefault("job_monitoring_interval", 10)
        super().__init__(queues, *args, **_worker_defaults(kwargs))


def worker_class() -> type[Worker] | type[SimpleWorker]:
    return ForkJobWorker if get_settings().worker_class == "fork" else JobWorker

"""A fixed-size pool of worker processes for one worker group, respawned when they die.

Why not `rq worker-pool`: honcho stops a Procfile process by sending SIGTERM to its whole process
group, and RQ's pool forwards a second signal to its workers, which RQ treats as a cold shutdown
that kills the running job. Here each worker sits in its own process group, so it receives exactly
one SIGTERM (from this pool) and finishes its current job before exiting (warm shutdown).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from typing import Any

log = logging.getLogger("workers.pool")


def worker_name(group: str, index: int) -> str:
    return f"{group}-{socket.gethostname()}-{os.getpid()}-{index}"


def run_worker(group: str, index: int, burst: bool = False) -> None:
    """Body of one worker process: bind the database, preload processors, work the group's queues."""
    os.setpgrp()
    from app.config import get_settings
    from app.db import bind_database
    from app.jobs.queues import get_redis, queue_names_for_group
    from app.logging_setup import configure_logging
    import workers.processors  # noqa: F401  (preloaded so no job pays for imports)
    from workers.worker import worker_class

    settings = get_settings()
    configure_logging(settings.log_level)
    bind_database(settings.effective_database_url, synchronous_commit=settings.worker_synchronous_commit)
    queues = queue_names_for_group(group)
    worker = worker_class()(queues, connection=get_redis(settings.redis_url), name=worker_name(group, index))
    worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level.upper())


class Pool:
    def __init__(self, group: str, size: int, burst: bool = False):
        if size < 1:
            raise ValueError(f"worker group {group!r} needs at least one process, got {size}")
        self.group, self.size, self.burst = group, size, burst
        self.children: dict[int, multiprocessing.Process] = {}
        self.stopping = False
        self._context = multiprocessing.get_context("fork")

    def _spawn(self, index: int) -> None:
        process = self._context.Process(target=run_worker, args=(self.group, index, self.burst),
                                        name=f"{self.group}-{index}", daemon=False)
        process.start()
        self.children[index] = process
        log.info("worker %s-%d started (pid %s)", self.group, index, process.pid)

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("%s: stopping %d workers after their current jobs", self.group, len(self.children))
        for process in self.children.values():
            if process.is_alive() and process.pid:
                try:
                    os.kill(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        for index in range(self.size):
            self._spawn(index)
        while True:
            for index, process in list(self.children.items()):
                if process.is_alive():
                    continue
                process.join(0)
                del self.children[index]
                if not self.stopping and not self.burst:
                    log.warning("worker %s-%d exited with %s; restarting", self.group, index, process.exitcode)
                    self._spawn(index)
            if not self.children:
                return 0
            time.sleep(0.5)

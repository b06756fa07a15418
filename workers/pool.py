"""A fixed-size pool of worker processes for one worker group, respawned when they die.

Why not `rq worker-pool`: honcho stops a Procfile process by sending SIGTERM to its whole process
group, and RQ's pool forwards a second signal to its workers, which RQ treats as a cold shutdown
that kills the running job. Here each worker sits in its own process group, so it receives exactly
one SIGTERM (from this pool) and finishes its current job before exiting (warm shutdown).

Workers never outlive the pool: if it dies without stopping them (kill -9, the OOM killer, honcho's
SIGKILL 5 s after its SIGTERM), each worker gets PARENT_DEATH_SIGNAL from the kernel
(PR_SET_PDEATHSIG on Linux; a parent-watch thread elsewhere) and makes a warm shutdown, unless one
is already under way: a second SIGTERM would be RQ's cold shutdown, which kills the running job.
Workers run no RQ scheduler process of their own (`with_scheduler=False`; it would outlive a killed
worker and keep honcho waiting on its output): scheduler.py moves due delayed jobs and retries of
every queue.
"""
from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

log = logging.getLogger("workers.pool")


# SIGHUP, not SIGTERM: "the parent hung up" is told apart from the pool's forwarded SIGTERM, so it can
# be ignored during a warm shutdown. Nothing else sends a worker SIGHUP: it is never in a terminal's
# foreground process group.
PARENT_DEATH_SIGNAL = signal.SIGHUP
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_WATCH_SECONDS = 1.0


def worker_name(group: str, index: int) -> str:
    return f"{group}-{socket.gethostname()}-{os.getpid()}-{index}"


def set_parent_death_signal(signum: int) -> bool:
    """Ask the Linux kernel to send `signum` to this process when its parent dies. False elsewhere.

    The kernel sends it when the *thread* that forked this process ends: the pool forks from its main
    thread, which lives as long as the pool.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signum), ctypes.c_ulong(0), ctypes.c_ulong(0),
                          ctypes.c_ulong(0)) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent_pid: int, signum: int, interval: float = PARENT_WATCH_SECONDS) -> threading.Thread:
    """Fallback without prctl: a daemon thread sends `signum` to this process once it is re-parented."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def die_with_parent(parent_pid: int, signum: int = PARENT_DEATH_SIGNAL) -> bool:
    """Arrange for `signum` to reach this process when `parent_pid`, its parent, dies.

    Returns False when the parent is already gone: it died between the fork and this call, so no
    signal will ever come and the caller must exit. (Checked after prctl, so there is no gap.)
    """
    if not set_parent_death_signal(signum):
        watch_parent(parent_pid, signum)
    return os.getppid() == parent_pid


def _stop_when_orphaned(worker: Any) -> None:
    """On PARENT_DEATH_SIGNAL, do what the pool would have done: send this worker one SIGTERM.

    Before RQ installs its handlers, SIGTERM (reset to the default) ends the process; afterwards it is
    RQ's warm shutdown. Already shutting down (the pool forwarded a SIGTERM before it was killed):
    nothing, as a second SIGTERM would make RQ kill the running job. (RQ 2.12 sets
    `_shutdown_requested_date` on the first SIGTERM; tests/test_orphans.py fails if that changes.)
    """

    def on_parent_death(signum: int, frame: Any) -> None:
        if getattr(worker, "_shutdown_requested_date", None) is None:
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(PARENT_DEATH_SIGNAL, on_parent_death)


def run_worker(group: str, index: int, burst: bool = False, parent_pid: int | None = None) -> None:
    """Body of one worker process: bind the database, preload processors, work the group's queues."""
    # The fork copied the pool's stop handler, which would swallow a SIGTERM meant for this worker
    # (and forward it to the others). The pool forked with the stop signals blocked: one that came
    # meanwhile is pending and, with the default action now, ends this worker before it starts.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    # Until _stop_when_orphaned takes over, the signal's default action ends this worker (no job yet).
    if parent_pid is not None and not die_with_parent(parent_pid):
        log.warning("worker %s-%d: pool %s exited before the worker started; exiting", group, index, parent_pid)
        return
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
    _stop_when_orphaned(worker)
    # No RQ scheduler process per worker: scheduler.py promotes delayed jobs and retries of every queue.
    worker.work(burst=burst, with_scheduler=False, logging_level=settings.log_level.upper())


class Pool:
    def __init__(self, group: str, size: int, burst: bool = False):
        if size < 1:
            raise ValueError(f"worker group {group!r} needs at least one process, got {size}")
        self.group, self.size, self.burst = group, size, burst
        self.children: dict[int, multiprocessing.Process] = {}
        self.stopping = False
        self._context = multiprocessing.get_context("fork")

    def _spawn(self, index: int) -> None:
        # Blocked until the child has dropped the pool's handlers (see run_worker); here until the new
        # worker is in self.children, so a stop requested meanwhile reaches it too.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process = self._context.Process(target=run_worker,
                                            args=(self.group, index, self.burst, os.getpid()),
                                            name=f"{self.group}-{index}", daemon=False)
            process.start()
            self.children[index] = process
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
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

"""The worker side of a pool: one worker process, forked by the supervisor (workers/supervisor.py).

Each worker sits in its own process group, so it receives exactly one SIGTERM (from the supervisor)
and finishes its current job before exiting (warm shutdown). Why not `rq worker-pool`: honcho stops
a Procfile process by sending SIGTERM to its whole process group, and RQ's pool forwards a second
signal to its workers, which RQ treats as a cold shutdown that kills the running job.

Workers never outlive their supervisor: if it dies without stopping them (kill -9, the OOM killer,
honcho's SIGKILL 5 s after its SIGTERM), each worker gets PARENT_DEATH_SIGNAL from the kernel
(PR_SET_PDEATHSIG on Linux; a parent-watch thread elsewhere) and makes a warm shutdown, unless one
is already under way: a second SIGTERM would be RQ's cold shutdown, which kills the running job.
Workers run no RQ scheduler process of their own (`with_scheduler=False`; it would outlive a killed
worker and keep honcho waiting on its output): scheduler.py moves due delayed jobs and retries of
every queue.

Everything a worker runs is imported by `preload()` in the supervisor, before it forks: the workers
share those pages instead of importing the app again each. Nothing may open a database or Redis
connection before the fork (app/db.py drops an inherited database connection in the child anyway).
"""
from __future__ import annotations

import ctypes
import logging
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
    `_shutdown_requested_date` on the first SIGTERM; tests/workers/test_orphans.py fails if that changes.)
    """

    def on_parent_death(signum: int, frame: Any) -> None:
        if getattr(worker, "_shutdown_requested_date", None) is None:
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(PARENT_DEATH_SIGNAL, on_parent_death)


def preload() -> None:
    """Import every module a worker needs to run any job, without opening any connection.

    The supervisor calls it once before forking its workers, so they share these pages (copy-on-write)
    instead of each importing the app again (~30 MB a worker). Modules RQ and the processors would
    import at their first job are listed too, or each worker would load them into private pages.
    """
    # Imported on first use: datetime.strptime (RQ's timestamps), requests' first call (.netrc lookup).
    import _strptime  # noqa: F401
    import netrc  # noqa: F401
    import shlex  # noqa: F401

    import app.config  # noqa: F401
    import app.db  # noqa: F401
    import app.integrations.qbittorrent  # noqa: F401  (the download client is picked at the first call)
    import app.integrations.transmission  # noqa: F401
    import app.jobs.callbacks  # noqa: F401
    import app.jobs.queues  # noqa: F401
    import app.logging_setup  # noqa: F401
    import app.models  # noqa: F401
    import workers.processors  # noqa: F401  (every processor and the clients they use)
    import workers.runner  # noqa: F401  (the function every RQ job calls)
    import workers.worker  # noqa: F401  (RQ and the worker classes)


def run_worker(group: str, index: int, burst: bool = False, parent_pid: int | None = None,
               kill_deadline: Any = None) -> None:
    """Body of one worker process: bind the database, preload processors, work the group's queues.

    `kill_deadline`: the supervisor's shared number for this slot (a stopped job's deadline, see JobWorker)."""
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
    preload()  # done by the supervisor before the fork: nothing left to import here
    from app.config import get_settings
    from app.db import bind_database
    from app.jobs.queues import queue_names_for_group
    from app.logging_setup import configure_logging
    from app.redis_connection import get_redis
    from workers.worker import worker_class

    settings = get_settings()
    configure_logging(settings.log_level)
    bind_database(settings.effective_database_url, synchronous_commit=settings.worker_synchronous_commit)
    queues = queue_names_for_group(group)
    worker = worker_class(group)(queues, connection=get_redis(settings.redis_url), name=worker_name(group, index),
                                 kill_deadline=kill_deadline)
    _stop_when_orphaned(worker)
    # No RQ scheduler process per worker: scheduler.py promotes delayed jobs and retries of every queue.
    worker.work(burst=burst, with_scheduler=False, logging_level=settings.log_level.upper())

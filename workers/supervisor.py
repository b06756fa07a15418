"""The supervisor: one preloaded parent that forks and keeps up the fixed worker pools of its groups.

`python -m workers --all` runs every group's pool under one supervisor (the default Procfile line);
`python -m workers GROUP [GROUP …]` runs some of them (worker hosts that split the groups).

Memory: the supervisor imports the app, RQ and every processor (workers.pool.preload) and freezes
those objects (gc.freeze) before it forks, so the workers share the pages instead of each loading
the app again. It opens no database or Redis connection a worker could inherit: its start-up check
uses connections of its own, closed before the first fork.

Start-up: Redis and the database are tried every STARTUP_RETRY_SECONDS for up to
WORKER_STARTUP_WAIT_SECONDS (a stack started before its database does not die; workers/startup_wait.py);
still unreachable after that, the supervisor exits with one line naming what it could not reach.

Crash loops: a worker slot whose process dies within CRASH_WINDOW_SECONDS of its start is restarted
after a back-off (1 s, doubling up to 60 s), reset once a process of that slot has run
CRASH_WINDOW_SECONDS; each death is logged once with its exit code or signal and the delay chosen.

Stopped jobs: each slot has a number in shared memory (`kill_deadline`) that its worker sets when an admin
stops its running job (workers/worker.py JobWorker); a worker still running that job once the deadline has
passed is killed (SIGKILL) and, like any dead worker, started again.

Stopping: SIGTERM or SIGINT sends each worker exactly one SIGTERM (RQ's warm shutdown: the running
job finishes); pending restarts are dropped; the supervisor exits once every worker has.
"""
from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_sentinels
from typing import Any

from app.jobs import types
from workers.pool import STOP_SIGNALS, preload, run_worker
from workers.startup_wait import (  # noqa: F401  (re-exported: python -m workers and tests import them from here)
    WaitStep,
    check_database,
    check_redis,
    endpoint,
    startup_wait_step,
    wait_for_services,
)

log = logging.getLogger("workers.supervisor")

CRASH_WINDOW_SECONDS = 10.0   # a process that dies sooner is crash-looping: its slot backs off
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
POLL_SECONDS = 0.5            # longest sleep between two looks at the workers


# --- decisions (pure) ---------------------------------------------------------------------------------

def restart_delay(previous_delay: float, lifetime: float) -> float:
    """Seconds to wait before restarting a slot whose process ran `lifetime` seconds and then died.

    `previous_delay` is the delay that came before that process (0 for none). A process that ran at
    least CRASH_WINDOW_SECONDS resets the back-off (restart at once); one that died sooner gets
    FIRST_BACKOFF_SECONDS, then twice the previous delay, at most MAX_BACKOFF_SECONDS.
    """
    if lifetime >= CRASH_WINDOW_SECONDS:
        return 0.0
    if previous_delay <= 0:
        return FIRST_BACKOFF_SECONDS
    return min(previous_delay * 2, MAX_BACKOFF_SECONDS)


def describe_exit(exitcode: int | None) -> str:
    """How a worker process ended, from multiprocessing's exitcode (negative: killed by that signal)."""
    if exitcode is None:
        return "ended (exit status unknown)"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with code {exitcode}"


def select_groups(known: list[str], counts: dict[str, int], named: list[str], run_all: bool,
                  excluded: list[str], size: int | None) -> dict[str, int]:
    """{group: processes} this supervisor runs, in the order of `known`; groups with 0 processes are left out.

    `named` groups (or every known group with `run_all`) minus `excluded`; each gets `size` processes
    when given, else its configured count (WORKERS_<GROUP>, else the size declared with the group in
    app/jobs/types.py). Raises ValueError for an unknown group name.
    """
    unknown = [group for group in [*named, *excluded] if group not in known]
    if unknown:
        raise ValueError(f"unknown worker group(s): {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [group for group in known if (run_all or group in named) and group not in excluded]
    declared = types.default_worker_counts()  # a group declared after the settings were read
    sizes = {group: size if size is not None else counts.get(group, declared.get(group, 1)) for group in chosen}
    return {group: count for group, count in sizes.items() if count > 0}


# --- the supervisor -----------------------------------------------------------------------------------

@dataclass
class Slot:
    """One worker position (group, index); its process is replaced when it dies."""

    group: str
    index: int
    process: Any = None               # multiprocessing.Process while one runs
    started_at: float = 0.0
    delay: float = 0.0                # back-off that preceded the current process (0: none)
    restart_at: float | None = None   # when the slot waits for a restart
    kill_deadline: Any = None         # shared RawValue('d'): monotonic time to kill the worker at (0: none)

    @property
    def label(self) -> str:
        return f"{self.group}-{self.index}"


class Supervisor:
    """Forks `sizes[group]` worker processes per group from this (preloaded) process and keeps them up."""

    def __init__(self, sizes: dict[str, int], burst: bool = False):
        if not sizes or any(count < 1 for count in sizes.values()):
            raise ValueError(f"every worker group needs at least one process, got {sizes}")
        self.sizes = dict(sizes)
        self.burst = burst
        self._context = multiprocessing.get_context("fork")
        self.slots = [Slot(group, index, kill_deadline=self._context.RawValue("d", 0.0))
                      for group, count in sizes.items() for index in range(count)]
        self.stopping = False

    # signals

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.stopping:
            return
        self.stopping = True
        running = [slot.process for slot in self.slots if slot.process is not None]
        log.info("stopping %d workers after their current jobs", len(running))
        for process in running:
            if process.is_alive() and process.pid:
                try:
                    os.kill(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    # processes

    def _spawn(self, slot: Slot) -> None:
        # Stop signals blocked until the child has dropped these handlers (see run_worker), and here until
        # the new worker is in its slot, so a stop requested meanwhile reaches it too.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            slot.kill_deadline.value = 0.0
            process = self._context.Process(target=run_worker, name=slot.label, daemon=False,
                                            args=(slot.group, slot.index, self.burst, os.getpid(), slot.kill_deadline))
            process.start()
            slot.process, slot.started_at, slot.restart_at = process, time.monotonic(), None
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        log.info("worker %s started (pid %s)", slot.label, process.pid)

    def _reap(self, slot: Slot) -> None:
        """The slot's process has exited: schedule its restart (unless stopping or in burst mode)."""
        process = slot.process
        process.join(0)
        slot.process = None
        if self.stopping or self.burst:
            return
        lifetime = time.monotonic() - slot.started_at
        slot.delay = restart_delay(slot.delay, lifetime)
        slot.restart_at = time.monotonic() + slot.delay
        when = f"restarting in {slot.delay:.0f} s" if slot.delay else "restarting"
        log.warning("worker %s (pid %s) %s after %.1f s; %s", slot.label, process.pid,
                    describe_exit(process.exitcode), lifetime, when)

    def _next_wakeup(self) -> float:
        due = [slot.restart_at for slot in self.slots if slot.restart_at is not None and slot.process is None]
        if not due:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, min(due) - time.monotonic()))

    def _kill_overdue(self, slot: Slot) -> None:
        """Kill the slot's worker when a job an admin stopped is still running past its deadline."""
        deadline = slot.kill_deadline.value
        process = slot.process
        if not deadline or time.monotonic() < deadline or process is None or not process.is_alive():
            return
        slot.kill_deadline.value = 0.0
        log.warning("worker %s (pid %s): a job stopped by an admin is still running past its deadline; "
                    "killing the worker", slot.label, process.pid)
        try:
            os.kill(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.join(5)

    def _step(self) -> bool:
        """Kill workers whose stopped job overran, reap dead workers, start due restarts; False once nothing runs
        or waits to run."""
        for slot in self.slots:
            self._kill_overdue(slot)
        for slot in self.slots:
            if slot.process is not None and not slot.process.is_alive():
                self._reap(slot)
        if self.stopping:
            for slot in self.slots:
                slot.restart_at = None
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
                self._spawn(slot)
        return any(slot.process is not None or slot.restart_at is not None for slot in self.slots)

    def run(self, startup_checks: Sequence[Callable[[], str | None]] = (), startup_window: float = 0.0) -> int:
        """Check the services, fork every worker, keep them up until stopped. Returns the exit status."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        problem = wait_for_services(list(startup_checks), startup_window, stopping=lambda: self.stopping)
        if problem:
            log.error("cannot start the workers: %s (tried for %.0f s; WORKER_STARTUP_WAIT_SECONDS)",
                      problem, startup_window)
            return 1
        if self.stopping:
            return 0
        log.info("supervisor (pid %s): %d workers: %s", os.getpid(), len(self.slots),
                 ", ".join(f"{group} ×{count}" for group, count in self.sizes.items()))
        for slot in self.slots:
            self._spawn(slot)
        while self._step():
            sentinels = [slot.process.sentinel for slot in self.slots if slot.process is not None]
            wakeup = self._next_wakeup()
            if sentinels:
                wait_for_sentinels(sentinels, timeout=wakeup)
            else:
                time.sleep(wakeup)
        return 0


def prepare_for_fork() -> None:
    """Preload what the workers run and freeze it, so the forked workers share those pages.

    The collector is off while importing (no freed holes in pages the workers will share) and on again
    afterwards; gc.freeze moves every object so far into a generation no collection visits, in this
    process and in its children, whose collections would otherwise write to every shared object.
    """
    gc.disable()
    try:
        preload()
    finally:
        gc.freeze()
        gc.enable()

"""The run this process is executing, as module state: its fencing token, its stop flag and the info events it
holds back (app/jobs/held_events.py). One run at a time per process (RQ workers run one job at a time), read by
the callbacks RQ calls after the job, in the same process. Started and ended only by app/jobs/fence.py."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


class LeaseLost(Exception):
    """This run's token is no longer the row's: another run owns the job now; stop writing."""


class RunStopped(BaseException):
    """An admin stopped this run (app/jobs/stopping.py): raised at the run's next checkpoint.

    A BaseException, like KeyboardInterrupt, so a processor's `except Exception` around a step does not
    swallow it; RQ still records it as the run's failure, and the callbacks write nothing for it (the row
    is already cancelled and its token cleared)."""


@dataclass
class Run:
    job_id: str
    token: str
    lost: bool = False
    stopped: bool = False  # an admin's Stop reached this process: the next checkpoint raises RunStopped
    started: float = field(default_factory=time.monotonic)
    # info events held back to be written with the run's completion (app/jobs/held_events.py); the lock
    # serialises their writers (the run's thread and the lease thread, which writes them once the run
    # is older than the hold time, so a long run's events still show within a second)
    held_events: list[tuple] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    renewed: float = field(default_factory=time.monotonic)  # mark_active wrote the first heartbeat
    confirmed: float = field(default_factory=time.monotonic)  # when the lease was last written (monotonic)

    def age(self) -> float:
        return time.monotonic() - self.started


_current: Run | None = None


def current() -> Run | None:
    return _current


def current_for(job_id: Any) -> Run | None:
    """The current run if it is a run of `job_id`."""
    run = _current
    return run if run is not None and run.job_id == str(job_id) else None


def set_current(run: Run | None) -> None:
    """For app/jobs/fence.py only: `begin` sets the run, `end` clears it."""
    global _current
    _current = run


def request_stop(job_id: Any) -> bool:
    """Mark the current run of `job_id` stopped (called from the worker's command thread). False when this
    process is not running that job."""
    run = current_for(job_id)
    if run is None:
        return False
    run.stopped = True
    return True


def checkpoint() -> None:
    """Raise RunStopped when an admin stopped the current run (no I/O: a flag the worker's command thread
    sets). Processors call it in their loops; every JobLogger call of a run is one too."""
    run = _current
    if run is not None and run.stopped:
        raise RunStopped(f"job {run.job_id}: stopped by an admin")

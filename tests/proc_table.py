"""The process table read from /proc: what a test started, what it left running, and its children.

Shared by the tests that start real pools, supervisors and workers (tests/workers/, tests/notifications/)."""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgrp: int
    state: str
    started: int  # clock ticks after boot: tells a reused pid from the process we saw

    @property
    def identity(self) -> tuple[int, int]:
        return self.pid, self.started


def read_proc(pid: int) -> Proc | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ..." where comm may hold spaces and parentheses
    fields = text[text.rindex(")") + 2:].split()
    return Proc(pid=pid, ppid=int(fields[1]), pgrp=int(fields[2]), state=fields[0], started=int(fields[19]))


def living_processes() -> list[Proc]:
    """Every process that has not exited (zombies waiting for a parent that never reaps are exited)."""
    found = (read_proc(int(entry)) for entry in os.listdir("/proc") if entry.isdigit())
    return [proc for proc in found if proc is not None and proc.state not in ("Z", "X")]


def is_running(proc: Proc) -> bool:
    now = read_proc(proc.pid)
    return now is not None and now.started == proc.started and now.state not in ("Z", "X")


def children(pid: int) -> list[Proc]:
    return [proc for proc in living_processes() if proc.ppid == pid]


def descendants(pid: int) -> list[Proc]:
    table = living_processes()
    found, parents = [], {pid}
    while True:
        level = [proc for proc in table if proc.ppid in parents and proc not in found]
        if not level:
            return found
        found += level
        parents = {proc.pid for proc in level}


def group_members(pgrp: int) -> list[Proc]:
    return [proc for proc in living_processes() if proc.pgrp == pgrp]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Leftovers:
    """Every process this test started, found by a variable only this test puts in their environment.

    Workers and their children are matched too, even once re-parented away from anything the test
    holds a handle for, and a worker the pool respawns while being stopped is caught as well.
    """

    def __init__(self, env: dict) -> None:
        self.marker = f"\0INSTANCE_DIR={env['INSTANCE_DIR']}\0".encode()

    def running(self) -> list[Proc]:
        return [proc for proc in living_processes() if proc.pid != os.getpid() and self._is_ours(proc.pid)]

    def _is_ours(self, pid: int) -> bool:
        try:
            return self.marker in b"\0" + Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return False

    def kill_all(self) -> None:
        """SIGKILL them, again while a pool still respawns workers, until none runs."""
        for _ in range(50):
            found = self.running()
            if not found:
                return
            for proc in found:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"could not stop {[cmdline(proc.pid) for proc in self.running()]}")

"""Orphan processes: a worker never outlives its pool, and a killed worker leaves nothing behind.

Real processes and real signals: `python -m workers` pools, `scheduler.py` and `honcho start` run as
subprocesses against the test Redis and PostgreSQL; the process tree is read from /proc (Linux).
Every test SIGKILLs whatever it started that is still running when it ends, pass or fail.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rq import Worker

from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.models import Job

import jobtypes  # noqa: F401  (test_sleep)
from helpers import ROOT, start_process, stop_process, wait_for
from proc_table import Leftovers, Proc, children, cmdline, descendants, group_members, is_running, read_proc

GROUP = "maintenance"  # a real worker group; its `noop` job needs no service


# --- helpers ------------------------------------------------------------------------------------------

def start_pool(env: dict, tmp_path: Path, size: int, name: str = "pool") -> subprocess.Popen:
    return start_process(["-m", "workers", GROUP, "--size", str(size)], env, tmp_path / f"{name}.log")


def wait_for_idle_workers(redis_conn, pool_pid: int, size: int, timeout: float = 60) -> list[Proc]:
    """The pool's worker processes once all `size` are registered in Redis and waiting for jobs."""

    def ready() -> list[Proc] | None:
        workers = children(pool_pid)
        idle = {w.pid for w in Worker.all(connection=redis_conn) if w.get_state() == "idle"}
        if len(workers) == size and {w.pid for w in workers} <= idle:
            return workers
        return None

    return wait_for(ready, timeout, interval=0.2, message=f"{size} idle workers under pool {pool_pid}")


def find_pool(root_pid: int, command: str) -> Proc | None:
    """The pool under root_pid (its command line starts with `command`) whose parent is not one: its
    workers have the same command line. Under honcho its parent is the `sh -c` running the Procfile
    line (dash does not exec it)."""
    pools = [proc for proc in descendants(root_pid) if cmdline(proc.pid).startswith(command)]
    pids = {proc.pid for proc in pools}
    tops = [proc for proc in pools if proc.ppid not in pids]
    return tops[0] if len(tops) == 1 else None


def start_honcho(procfile: str, env: dict, tmp_path: Path) -> tuple[subprocess.Popen, object]:
    """`honcho start` on `procfile`, in its own session, with the test's environment."""
    (tmp_path / "Procfile").write_text(procfile)
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT) + os.pathsep + str(ROOT / "tests")}
    script = Path(sys.executable).parent / "honcho"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "honcho"]
    log = open(tmp_path / "honcho.log", "wb")
    # app root = tmp_path: honcho reads no .env; the processes run in ROOT, honcho's own directory
    honcho = subprocess.Popen([*command, "start", "--no-colour", "-f", str(tmp_path / "Procfile"), "-d", str(tmp_path)],
                              cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return honcho, log


def stop_honcho(honcho: subprocess.Popen, log) -> None:
    if honcho.poll() is None:
        os.killpg(honcho.pid, signal.SIGKILL)  # honcho and its runner processes (its own session)
    honcho.wait(10)
    log.close()


# --- the tests ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_workers_exit_when_their_pool_is_killed(settings_env, redis_conn, tmp_path):
    settings, env = settings_env
    pool = start_pool(env, tmp_path, size=2)
    leftovers = Leftovers(env)
    try:
        workers = wait_for_idle_workers(redis_conn, pool.pid, 2)
        os.kill(pool.pid, signal.SIGKILL)
        pool.wait(10)
        wait_for(lambda: not any(is_running(worker) for worker in workers), 15, interval=0.2,
                 message="the workers of a SIGKILLed pool to exit")
        # a warm shutdown, not a kill: each worker deregistered itself from Redis on the way out
        wait_for(lambda: not Worker.all(connection=redis_conn), 5, message="workers to deregister")
    finally:
        leftovers.kill_all()
        stop_process(pool)


@pytest.mark.slow
def test_a_killed_worker_leaves_no_process_behind_and_is_replaced(settings_env, redis_conn, tmp_path):
    settings, env = settings_env
    pool = start_pool(env, tmp_path, size=2)
    leftovers = Leftovers(env)
    try:
        workers = wait_for_idle_workers(redis_conn, pool.pid, 2)
        # the worker that started RQ's scheduler process, if one did (the old code), else the first
        victim = next((worker for worker in workers if children(worker.pid)), workers[0])
        its_children = children(victim.pid)
        os.kill(victim.pid, signal.SIGKILL)

        def nothing_of_the_victim_runs() -> bool:
            return not group_members(victim.pid) and not any(is_running(child) for child in its_children)

        wait_for(nothing_of_the_victim_runs, 15, interval=0.2,
                 message=f"no process left of the killed worker {victim.pid} (its children: {its_children})")
        survivor = next(worker for worker in workers if worker is not victim)

        def replaced() -> bool:
            pids = {worker.pid for worker in children(pool.pid)}
            return len(pids) == 2 and survivor.pid in pids and victim.pid not in pids

        wait_for(replaced, 30, interval=0.2, message="the pool to start a new worker")
        workers = wait_for_idle_workers(redis_conn, pool.pid, 2)
        assert pool.poll() is None
        # a worker runs no child process of its own while idle (no RQ scheduler process)
        assert sorted(proc.pid for proc in descendants(pool.pid)) == sorted(worker.pid for worker in workers)
    finally:
        leftovers.kill_all()
        stop_process(pool)


@pytest.mark.slow
def test_a_pool_stopped_while_it_replaces_a_worker_stops_the_new_worker_too(settings_env, redis_conn, tmp_path):
    """A worker forks with the pool's SIGTERM handler; the pool's SIGTERM must still end it."""
    settings, env = settings_env
    pool = start_pool(env, tmp_path, size=1)
    leftovers = Leftovers(env)
    try:
        [worker] = wait_for_idle_workers(redis_conn, pool.pid, 1)
        os.kill(worker.pid, signal.SIGKILL)
        [replacement] = wait_for(lambda: [proc for proc in children(pool.pid) if proc.pid != worker.pid], 30,
                                 interval=0.002, message="the pool to fork a new worker")
        pool.send_signal(signal.SIGTERM)  # while the new worker is starting
        wait_for(lambda: pool.poll() is not None, 30, interval=0.2, message="the pool to stop")
        assert pool.returncode == 0
        assert not is_running(replacement)
    finally:
        leftovers.kill_all()
        stop_process(pool)


@pytest.mark.slow
def test_honcho_exits_when_a_pool_is_killed_and_leaves_nothing_running(settings_env, redis_conn, tmp_path):
    settings, env = settings_env
    pool_command = f"{sys.executable} -m workers {GROUP} --size 2"
    honcho, log = start_honcho(f"{GROUP}: {pool_command}\n", env, tmp_path)
    leftovers = Leftovers(env)
    try:
        pool = wait_for(lambda: find_pool(honcho.pid, pool_command), 60, interval=0.2,
                        message="honcho to start the pool")
        wait_for_idle_workers(redis_conn, pool.pid, 2)
        everything = descendants(honcho.pid)
        os.kill(pool.pid, signal.SIGKILL)
        wait_for(lambda: honcho.poll() is not None, 15, interval=0.2,
                 message="honcho to exit after its pool was SIGKILLed")
        still_running = [proc for proc in everything if is_running(proc)]
        assert still_running == [], [cmdline(proc.pid) for proc in still_running]
    finally:
        leftovers.kill_all()
        stop_honcho(honcho, log)


@pytest.mark.slow
def test_stopping_honcho_lets_the_running_job_finish_though_honcho_kills_the_pool(settings_env, redis_conn,
                                                                                  tmp_path):
    """honcho SIGTERMs every line, and SIGKILLs what still runs 5 s after the first one stopped: here
    the pool, whose worker is in a warm shutdown. Its parent's death must not turn that into a cold one."""
    settings, env = settings_env
    pool_command = f"{sys.executable} tests/run_pool.py testing --size 1"
    honcho, log = start_honcho(f"other: sleep 600\npool: {pool_command}\n", env, tmp_path)
    leftovers = Leftovers(env)
    try:
        pool = wait_for(lambda: find_pool(honcho.pid, pool_command), 60, interval=0.2,
                        message="honcho to start the pool")
        wait_for_idle_workers(redis_conn, pool.pid, 1)
        everything = descendants(honcho.pid)
        job_id = add_job("test_sleep", {"seconds": 10})  # longer than honcho's 5 s before SIGKILL
        wait_for(lambda: redis_conn.get(f"test:sleeping:{job_id}"), 30, message="the job to start")
        honcho.send_signal(signal.SIGTERM)
        wait_for(lambda: honcho.poll() is not None, 60, interval=0.2, message="honcho to exit")
        still_running = [proc for proc in everything if is_running(proc)]
        assert still_running == [], [cmdline(proc.pid) for proc in still_running]
    finally:
        leftovers.kill_all()
        stop_honcho(honcho, log)
    assert "sending SIGKILL to pool" in (tmp_path / "honcho.log").read_text()  # the case under test
    row = Job.get_by_id(job_id)
    assert (row.status, row.attempts, row.result) == ("completed", 1, {"run": 1})


@pytest.mark.slow
def test_a_worker_whose_pool_died_before_it_started_exits_at_once(settings_env, redis_conn, tmp_path):
    """The race prctl alone leaves open: the parent is gone before the worker asked to be told."""
    settings, env = settings_env
    returned = tmp_path / "returned"
    program = textwrap.dedent(f"""
        import os, time
        from workers.pool import run_worker
        pool = os.getpid()
        if os.fork() == 0:
            while os.getppid() == pool:  # the "pool" has not exited yet
                time.sleep(0.01)
            run_worker({GROUP!r}, 0, parent_pid=pool)
            open({str(returned)!r}, "w").write("returned")
        os._exit(0)
    """)
    process = start_process(["-c", program], env, tmp_path / "race.log")
    leftovers = Leftovers(env)
    try:
        process.wait(30)
        wait_for(returned.exists, 30, interval=0.2, message="run_worker to return")
        assert Worker.all(connection=redis_conn) == []  # it never started working
    finally:
        leftovers.kill_all()
        stop_process(process)


@pytest.mark.slow
def test_without_prctl_a_parent_watch_thread_signals_the_orphan(settings_env, tmp_path):
    """The fallback for systems without PR_SET_PDEATHSIG, exercised here on Linux."""
    settings, env = settings_env
    program = textwrap.dedent("""
        import os, signal, time
        from workers.pool import watch_parent
        parent = os.getpid()
        child = os.fork()
        if child == 0:
            watch_parent(parent, signal.SIGTERM, interval=0.1)
            time.sleep(600)
            os._exit(0)
        print(child, flush=True)
        time.sleep(600)
    """)
    output = tmp_path / "watch.log"
    parent = start_process(["-c", program], env, output)
    leftovers = Leftovers(env)
    try:
        child = read_proc(int(wait_for(lambda: output.read_text().strip(), 30, message="the child's pid")))
        assert child is not None and child.ppid == parent.pid
        os.kill(parent.pid, signal.SIGKILL)
        wait_for(lambda: not is_running(child), 10, interval=0.1, message="the orphan to exit")
    finally:
        leftovers.kill_all()
        stop_process(parent)


@pytest.mark.slow
def test_delayed_jobs_are_moved_to_their_queue_by_the_scheduler_process(settings_env, redis_conn, tmp_path):
    settings, env = settings_env
    pool = start_pool(env, tmp_path, size=1)
    scheduler = None
    leftovers = Leftovers(env)
    try:
        wait_for_idle_workers(redis_conn, pool.pid, 1)  # the pool starts first: it could take the locks
        scheduler = start_process(["scheduler.py"], env, tmp_path / "scheduler.log")
        job_id = add_job("noop", {}, delay=2)
        assert Job.get_by_id(job_id).status == "delayed"
        wait_for(lambda: Job.get_by_id(job_id).status == "completed", 30, interval=0.2,
                 message="the delayed job to run")
        # one RQ scheduler, scheduler.py's (it covers every queue), holds the lock of every queue:
        # the worker's queues too, so no worker runs a scheduler of its own
        queues = queue_names_for_group(GROUP) + queue_names_for_group("search_indexers")
        holders = {redis_conn.get(f"rq:scheduler-lock:{name}") for name in queues}
        assert len(holders) == 1 and None not in holders, holders
    finally:
        leftovers.kill_all()
        if scheduler is not None:
            stop_process(scheduler)
        stop_process(pool)

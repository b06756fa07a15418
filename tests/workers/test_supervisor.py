"""The supervisor (`python -m workers --all`): every group's workers forked from one preloaded parent,
crash-loop back-off, the start-up wait for Redis and PostgreSQL, one clear line for a bad setting.

Decisions are pure functions tested by tables; the rest runs real processes (`python -m workers`,
`tests/run_pool.py` for the test job types, redis-server) against the test Redis and PostgreSQL, with
the process tree read from /proc (Linux).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from rq import Worker

from app.jobs.service import add_job
from app.models import Job
from workers.supervisor import (
    FIRST_BACKOFF_SECONDS,
    MAX_BACKOFF_SECONDS,
    WaitStep,
    describe_exit,
    endpoint,
    restart_delay,
    select_groups,
    startup_wait_step,
    wait_for_services,
)

import jobtypes  # noqa: F401  (test_sleep, the testing group)
from daemons import free_port
from helpers import ROOT, start_process, stop_process, wait_for
from proc_table import Leftovers, children, is_running

GROUPS = ["search_indexers", "download_torrent", "monitor_download", "organize_files", "scan_plex",
          "plex_recently_added_check", "maintenance", "send_notification"]
SMALL_COUNTS = {f"WORKERS_{group.upper()}": "1" for group in GROUPS} | {"WORKERS_SEARCH_INDEXERS": "2"}


# --- decisions ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("previous_delay, lifetime, expected", [
    (0, 0.2, FIRST_BACKOFF_SECONDS),     # first quick death: 1 s
    (1, 0.2, 2),                         # then doubling
    (2, 9.9, 4),
    (32, 1, MAX_BACKOFF_SECONDS),        # capped at 60 s
    (60, 1, MAX_BACKOFF_SECONDS),
    (0, 10, 0),                          # ran 10 s: not a crash loop, restarted at once
    (60, 10, 0),                         # … and the back-off starts again from nothing
    (8, 3600, 0),
])
def test_restart_delay(previous_delay, lifetime, expected):
    assert restart_delay(previous_delay, lifetime) == expected


def test_a_crash_loop_backs_off_1_2_4_up_to_60_seconds():
    delays, delay = [], 0.0
    for _ in range(9):
        delay = restart_delay(delay, lifetime=0.5)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


@pytest.mark.parametrize("exitcode, expected", [
    (0, "exited with code 0"),
    (1, "exited with code 1"),
    (-signal.SIGKILL, "was killed by SIGKILL"),
    (-signal.SIGSEGV, "was killed by SIGSEGV"),
    (None, "ended (exit status unknown)"),
])
def test_describe_exit(exitcode, expected):
    assert describe_exit(exitcode) == expected


KNOWN = ["search_indexers", "monitor_download", "scan_plex", "maintenance"]
COUNTS = {"search_indexers": 3, "monitor_download": 5, "scan_plex": 0, "maintenance": 1}


@pytest.mark.parametrize("named, run_all, excluded, size, expected", [
    ([], True, [], None, {"search_indexers": 3, "monitor_download": 5, "maintenance": 1}),  # scan_plex: 0
    ([], True, ["monitor_download"], None, {"search_indexers": 3, "maintenance": 1}),
    (["maintenance", "search_indexers"], False, [], None, {"search_indexers": 3, "maintenance": 1}),  # known order
    (["monitor_download"], False, [], 2, {"monitor_download": 2}),
    (["scan_plex"], False, [], None, {}),  # 0 processes configured: nothing to run
])
def test_select_groups(named, run_all, excluded, size, expected):
    assert select_groups(KNOWN, COUNTS, named, run_all, excluded, size) == expected


def test_select_groups_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown worker group"):
        select_groups(KNOWN, COUNTS, ["nope"], False, [], None)
    with pytest.raises(ValueError, match="typo"):
        select_groups(KNOWN, COUNTS, [], True, ["typo"], None)


@pytest.mark.parametrize("elapsed, window, last_logged, expected", [
    (0, 60, None, WaitStep(give_up=False, log_now=True)),    # the first failure is logged
    (2, 60, 0, WaitStep(give_up=False, log_now=False)),      # then quiet …
    (8, 60, 0, WaitStep(give_up=False, log_now=False)),
    (10, 60, 0, WaitStep(give_up=False, log_now=True)),      # … one line per 10 s
    (60, 60, 50, WaitStep(give_up=True, log_now=False)),     # window used up
    (0, 0, None, WaitStep(give_up=True, log_now=False)),     # no window: no wait at all
])
def test_startup_wait_step(elapsed, window, last_logged, expected):
    assert startup_wait_step(elapsed, window, last_logged) == expected


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_services_retries_every_2_s_and_logs_every_10_s(caplog):
    clock = FakeClock()
    answers = iter(["Redis down"] * 12 + [None])
    caplog.set_level("WARNING", logger="workers.supervisor")
    problem = wait_for_services([lambda: next(answers)], 60, clock=clock, sleep=clock.sleep)
    assert problem is None and clock.now == 24  # 12 failed tries, 2 s apart
    waiting = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting")]
    assert len(waiting) == 3  # at 0, 10 and 20 s
    assert any(r.getMessage().startswith("services reachable after 24 s") for r in caplog.records)


def test_wait_for_services_gives_up_after_the_window():
    clock = FakeClock()
    problem = wait_for_services([lambda: None, lambda: "PostgreSQL down"], 60, clock=clock, sleep=clock.sleep)
    assert problem == "PostgreSQL down" and clock.now == 60


def test_wait_for_services_stops_waiting_when_asked_to_stop():
    clock = FakeClock()
    assert wait_for_services([lambda: "Redis down"], 60, stopping=lambda: clock.now >= 4, clock=clock,
                             sleep=clock.sleep) is None
    assert clock.now == 4


@pytest.mark.parametrize("url, shown", [
    ("redis://:s3cret@10.0.0.5:6380/2", "10.0.0.5:6380/2"),
    ("postgresql://rmab:p%40ss@db.lan:5432/readmeabook", "db.lan:5432/readmeabook"),
    ("unix:///run/redis.sock", "unix:/run/redis.sock"),
])
def test_endpoint_never_shows_credentials(url, shown):
    assert endpoint(url) == shown


# --- real processes -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_preload_imports_what_workers_run_freezes_it_and_opens_no_connection(settings_env):
    """What the supervisor does before it forks: the workers share these pages, and nothing is connected
    that a worker could inherit (a module that connected at import time would show here)."""
    env = settings_env[1]
    program = (
        "import gc, os, sys\n"
        "from workers.supervisor import prepare_for_fork\n"
        "prepare_for_fork()\n"
        "links = []\n"
        "for fd in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        links.append(os.readlink(f'/proc/self/fd/{fd}'))\n"
        "    except OSError:  # the descriptor listdir itself used\n"
        "        pass\n"
        "print(sorted({'workers.processors', 'workers.runner', 'workers.worker', 'rq.worker', 'psycopg2',\n"
        "              'app.integrations.qbittorrent', 'app.integrations.transmission'} - set(sys.modules)))\n"
        "print(gc.get_freeze_count() > 50_000, gc.isenabled())\n"
        "print([link for link in links if link.startswith('socket:')])\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "True True", "[]"]


def _workers_by_pid(redis_conn) -> dict[int, str]:
    return {worker.pid: worker.name for worker in Worker.all(connection=redis_conn)}


def _group_of(worker_name: str) -> str:
    return worker_name.split("-", 1)[0]


def _sockets(pid: int) -> list[str]:
    links = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:
            pass
    return [link for link in links if link.startswith("socket:")]


@pytest.mark.slow
def test_all_groups_run_under_one_supervisor_and_a_sigterm_lets_the_running_job_finish(settings_env, redis_conn,
                                                                                         tmp_path):
    env = settings_env[1]
    expected = {group: 1 for group in GROUPS} | {"search_indexers": 2, "testing": 1}
    supervisor = start_process(["tests/run_pool.py", "--all"], {**env, **SMALL_COUNTS}, tmp_path / "all.log")
    leftovers = Leftovers(env)
    try:
        def all_registered() -> dict[int, str] | None:
            found = _workers_by_pid(redis_conn)
            return found if len(found) == sum(expected.values()) else None

        workers = wait_for(all_registered, 60, interval=0.2, message="every group's workers to register")
        # one parent for all of them: the supervisor's children are exactly the registered workers
        assert sorted(proc.pid for proc in children(supervisor.pid)) == sorted(workers)
        per_group: dict[str, int] = {}
        for name in workers.values():
            per_group[_group_of(name)] = per_group.get(_group_of(name), 0) + 1
        assert per_group == expected
        # the workers opened their own connections after the fork; the supervisor holds none to inherit
        assert _sockets(supervisor.pid) == []

        # jobs of two groups (maintenance and plex_recently_added_check, which is skipped without Plex)
        done = [add_job("noop", {}), add_job("plex_recently_added_check", {})]
        wait_for(lambda: all(Job.get_by_id(job_id).status == "completed" for job_id in done), 30, interval=0.2,
                 message="a job of each of two groups")

        running = add_job("test_sleep", {"seconds": 3})
        wait_for(lambda: redis_conn.get(f"test:sleeping:{running}"), 30, message="the job to start")
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
        row = Job.get_by_id(running)
        assert (row.status, row.attempts, row.result) == ("completed", 1, {"run": 1})  # warm: it finished
        assert leftovers.running() == []
        assert Worker.all(connection=redis_conn) == []  # every worker deregistered on its way out
    finally:
        leftovers.kill_all()
        stop_process(supervisor)


@pytest.mark.slow
def test_a_worker_killed_right_after_each_start_is_restarted_with_growing_delays(settings_env, redis_conn,
                                                                                  tmp_path):
    env = settings_env[1]
    log = tmp_path / "supervisor.log"
    supervisor = start_process(["-m", "workers", "maintenance", "--size", "1"], env, log)
    leftovers = Leftovers(env)
    killed: list[int] = []
    try:
        for _ in range(4):
            [worker] = wait_for(lambda: [p for p in children(supervisor.pid) if p.pid not in killed], 30,
                                interval=0.01, message="the supervisor to start the worker again")
            os.kill(worker.pid, signal.SIGKILL)
            killed.append(worker.pid)
            wait_for(lambda victim=worker: not is_running(victim), 10, interval=0.01, message="the killed worker to go")
        wait_for(lambda: len(re.findall("restarting in", log.read_text())) == 4, 10, interval=0.1,
                 message="the fourth restart to be logged")
        assert supervisor.poll() is None
    finally:
        leftovers.kill_all()
        stop_process(supervisor)
    lines = [line for line in log.read_text().splitlines() if "restarting" in line]
    assert [re.search(r"restarting in (\d+) s", line).group(1) for line in lines] == ["1", "2", "4", "8"]
    assert all("worker maintenance-0" in line and "was killed by SIGKILL" in line for line in lines)


def _start_redis(port: int, data: Path) -> subprocess.Popen:
    data.mkdir(exist_ok=True)
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(data), "--daemonize", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for(lambda: _pings(port), 10, message="redis-server")
    return server


def _pings(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


@pytest.mark.slow
def test_redis_unreachable_at_start_is_waited_for_then_the_workers_run(settings_env, use_settings, tmp_path):
    port = free_port()
    use_settings(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    env = settings_env[1]
    log = tmp_path / "supervisor.log"
    supervisor = start_process(["-m", "workers", "maintenance", "--size", "1"], env, log)
    leftovers = Leftovers(env)
    server = None
    try:
        wait_for(lambda: "waiting for services" in log.read_text(), 20, message="the supervisor to wait for Redis")
        assert supervisor.poll() is None and children(supervisor.pid) == []  # nothing forked while waiting
        server = _start_redis(port, tmp_path / "redis")
        job_id = add_job("noop", {})
        wait_for(lambda: Job.get_by_id(job_id).status == "completed", 30, interval=0.2,
                 message="the job once Redis is up")
    finally:
        leftovers.kill_all()
        stop_process(supervisor)
        if server is not None:
            server.terminate()
            server.wait(10)
    text = log.read_text()
    assert f"Redis at 127.0.0.1:{port}/0 is not reachable" in text
    assert "services reachable after" in text


@pytest.mark.slow
def test_services_still_unreachable_after_the_window_stop_the_supervisor_with_one_line(settings_env, tmp_path):
    env = settings_env[1]
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "workers", "--all"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, env={**os.environ, **env, "REDIS_URL": f"redis://127.0.0.1:{port}/0",
                                           "WORKER_STARTUP_WAIT_SECONDS": "2"})
    assert done.returncode == 1
    last_words = [line for line in done.stderr.splitlines() if "cannot start the workers" in line]
    assert len(last_words) == 1
    assert f"cannot start the workers: Redis at 127.0.0.1:{port}/0 is not reachable" in last_words[0]
    assert "WORKER_STARTUP_WAIT_SECONDS" in last_words[0]


@pytest.mark.slow
def test_a_bad_setting_stops_the_supervisor_at_once_with_one_clear_line(settings_env):
    env = settings_env[1]
    done = subprocess.run([sys.executable, "-m", "workers", "--all"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, env={**os.environ, **env, "WORKERS_SEARCH_INDEXERS": "abc"})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "workers: Invalid configuration: WORKERS_SEARCH_INDEXERS='abc': invalid literal for int() with base 10: 'abc'"]


@pytest.mark.slow
def test_match_plex_runs_in_the_maintenance_group(settings_env):
    from app.jobs import types
    from app.jobs.queues import queue_names_for_group

    assert types.get("match_plex").group == "maintenance" and "match_plex" not in types.groups()
    assert "match_plex.low" in queue_names_for_group("maintenance")
    env = settings_env[1]
    listing = subprocess.run([sys.executable, "-m", "workers", "--list"], cwd=ROOT, capture_output=True, text=True,
                             timeout=30, env={**os.environ, **env})
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert not any(line.startswith("match_plex") for line in lines)
    maintenance = next(line for line in lines if line.startswith("maintenance (1 process): "))
    assert "match_plex.high" in maintenance and "noop.low" in maintenance
    assert lines[-1] == "`python -m workers --all` runs 17 worker processes under one supervisor."
    retired = subprocess.run([sys.executable, "-m", "workers", "match_plex"], cwd=ROOT, capture_output=True,
                             text=True, timeout=30, env={**os.environ, **env})
    assert retired.returncode == 2
    assert "'match_plex' is no longer a worker group: the maintenance group runs its jobs" in retired.stderr

"""The whole system for one fault scenario: its own PostgreSQL and Redis, real qbittorrent-nox, the fake
Prowlarr (with holds) and Plex, and every Procfile line as its own process group.

Every process of the stack carries RMAB_FAULT_RUN=<marker> in its environment (children inherit it),
so the harness can find all of them in /proc, kill them all at once (whole-stack SIGKILL) and prove
that none survives a stop. A sampler thread records every request's status and jobs five times a
second (the recovery times are read from that timeline) and plays Plex's part: a book that reached
`downloaded` appears in the fake library and the Recently Added Check is triggered through the API.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from app.jobs import types

from daemons import QBittorrent, free_port
from fakes.plex import FakePlex
from faults.books import Book, make_book
from faults.hosts import HOSTNAME, SecondHost
from faults.prowlarr import FaultyProwlarr
from faults.servers import PostgresServer, RedisServer, wait_until

ROOT = Path(__file__).resolve().parents[2]
MARKER_ENV = "RMAB_FAULT_RUN"
API_TOKEN = "fault-suite-api-token-0123456789"
UNFINISHED_JOB_STATUSES = ("pending", "delayed", "active", "stuck")
SETTLED_REQUEST_STATUSES = ("available", "failed", "cancelled", "warn", "awaiting_search", "awaiting_import")
# Short timings so a scenario fits in about a minute.
FAST_SETTINGS = {"JOB_HEARTBEAT_TTL": "6", "MONITOR_POLL_SECONDS": "1", "JOB_BACKOFF_SECONDS": "1",
                 "PLEX_REFRESH_CHECK_DELAY_SECONDS": "2",
                 "LOG_LEVEL": "info"}


def procfile_lines(path: Path = ROOT / "Procfile") -> list[tuple[str, str]]:
    """(name, command) of every Procfile line."""
    lines = []
    for raw in path.read_text().splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            name, _, command = raw.partition(":")
            lines.append((name.strip(), command.strip()))
    return lines


def marked_processes(marker: str) -> list[tuple[int, str]]:
    """(pid, cmdline) of every live process whose environment carries this run's marker."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie is dead; its parent just has not reaped it yet
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found.append((int(entry.name), cmdline))
    return found


class QBittorrentAdmin:
    """What the test itself asks qBittorrent (the system under test has its own client)."""

    def __init__(self, daemon: QBittorrent):
        self.daemon = daemon
        self.session = requests.Session()

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.session.request(method, f"{self.daemon.url}/api/v2/{path}", timeout=10, **kwargs)
        if response.status_code == 403:
            self.session.post(f"{self.daemon.url}/api/v2/auth/login", timeout=10,
                              data={"username": self.daemon.username, "password": self.daemon.password})
            response = self.session.request(method, f"{self.daemon.url}/api/v2/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def torrents(self, tag: str | None = None) -> list[dict]:
        return self._call("GET", "torrents/info", params={"tag": tag} if tag else {}).json()

    def recheck(self, info_hash: str) -> None:
        self._call("POST", "torrents/recheck", data={"hashes": info_hash})


@dataclass
class Snapshot:
    at: float
    status: str
    progress: int
    error: str | None
    jobs: dict[str, tuple[str, str, int, int]]   # id -> (type, status, attempts, polls)


def moved(before: Snapshot, after: Snapshot) -> bool:
    """The request is moving: its status or progress changed (not to failed), a job appeared, a job ran
    again (attempts or polls up), started (active) or completed. A job merely declared stuck, delayed
    for a retry or failed is detection, not movement."""
    if after.status != before.status and after.status != "failed":
        return True
    if after.progress != before.progress:
        return True
    for job_id, (_, status, attempts, polls) in after.jobs.items():
        old = before.jobs.get(job_id)
        if old is None:
            return True
        _, old_status, old_attempts, old_polls = old
        if attempts > old_attempts or polls > old_polls:
            return True
        if status != old_status and status in ("active", "completed"):
            return True
    return False


@dataclass
class Timeline:
    snapshots: dict[str, list[Snapshot]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request_id: str, snapshot: Snapshot) -> None:
        with self.lock:
            history = self.snapshots.setdefault(request_id, [])
            last = history[-1] if history else None
            if last is None or (last.status, last.progress, last.error, last.jobs) != \
                    (snapshot.status, snapshot.progress, snapshot.error, snapshot.jobs):
                history.append(snapshot)

    def of(self, request_id: str) -> list[Snapshot]:
        with self.lock:
            return list(self.snapshots.get(request_id, []))

    def statuses(self, request_id: str) -> list[str]:
        seen: list[str] = []
        for snapshot in self.of(request_id):
            if not seen or seen[-1] != snapshot.status:
                seen.append(snapshot.status)
        return seen

    def moved_after(self, request_id: str, since: float) -> float | None:
        """Seconds from `since` to the request's first movement after it (None: it never moved)."""
        history = self.of(request_id)
        before = [s for s in history if s.at <= since]
        after = history[len(before):]
        if not before:  # no sample before the fault: the first one after is the baseline
            before, after = after[:1], after[1:]
        previous = before[-1] if before else None
        for snapshot in after:
            if moved(previous, snapshot):
                return snapshot.at - since
            previous = snapshot
        return None

    def describe(self, request_id: str, origin: float) -> str:
        """The request's changes, one line each, with times relative to `origin` (the fault)."""
        lines = []
        for snapshot in self.of(request_id):
            jobs = ", ".join(f"{t}:{st}/a{a}/p{p}" for t, st, a, p in snapshot.jobs.values())
            lines.append(f"  {snapshot.at - origin:+7.2f} s {snapshot.status:<12} {snapshot.progress:>3}% [{jobs}]")
        return "\n".join(lines)

    def first_time(self, request_id: str, status: str, since: float = 0.0) -> float | None:
        return next((s.at for s in self.of(request_id) if s.status == status and s.at >= since), None)

    def job_became(self, request_id: str, job_id: str, status: str, since: float) -> float | None:
        """Seconds from `since` until the job was first seen in `status` (e.g. when it was declared stuck)."""
        for snapshot in self.of(request_id):
            job = snapshot.jobs.get(job_id)
            if snapshot.at >= since and job is not None and job[1] == status:
                return snapshot.at - since
        return None


class Stack:
    """Services + Procfile processes for one scenario. Use as a context manager; `close()` is idempotent."""

    def __init__(self, root: Path, workers: dict[str, int] | None = None, settings: dict[str, str] | None = None,
                 second_host: SecondHost | None = None):
        """`second_host`: the services also listen on its host-end addresses (qBittorrent, Prowlarr and Plex
        only there, so both hosts use the same URLs), and `start_workers` can run workers inside it."""
        self.root = root
        self.second_host = second_host
        self.logs, self.downloads, self.media, self.staging = (root / n for n in ("logs", "downloads", "media",
                                                                                  "staging"))
        for folder in (self.logs, self.downloads, self.media, self.staging):
            folder.mkdir(parents=True, exist_ok=True)
        self.marker = uuid.uuid4().hex
        # The production groups only: the groups of the JobKind types. Tests declare groups of their own in this
        # process (tests/jobtypes.py: "testing"), which the stack's workers never serve.
        production = {types.get(kind).group for kind in types.JobKind}
        self.worker_counts = ({group.name: 1 for group in types.worker_groups() if group.name in production}
                              | (workers or {}))
        self.settings = {**FAST_SETTINGS, **(settings or {})}
        self.web_port = free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.books: dict[str, Book] = {}          # request id -> book
        self.timeline = Timeline()
        self.triggered_checks: list[str] = []
        self.hidden_from_plex: set[str] = set()   # request ids whose book Plex does not see yet
        self.jobs_settled_after: float | None = None  # s from the requests settling to no unfinished job
        self.pg: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.qbt: QBittorrent | None = None
        services = second_host.services_address if second_host else "127.0.0.1"
        self.prowlarr = FaultyProwlarr(host=services)
        # Plex sees MEDIA_DIR under the same path; what it has scanned is played by _play_plex
        self.plex = FakePlex(locations={str(self.media): None}, host=services)
        self._sampler_stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._connections = threading.local()   # the sampler thread and the test each have one
        self._all_connections: list = []
        self._closed = False
        self._log_files: list = []
        self.qbt_admin: QBittorrentAdmin | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self.start_services()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start_services(self) -> None:
        host = self.second_host
        self.pg = PostgresServer(*((host.pg_address, host.address) if host else ())).start()
        self.pg.create_database()
        self.redis = RedisServer(self.root / "redis", *((host.redis_address,) if host else ())).start()
        self.qbt = QBittorrent(self.root / "qbt", self.downloads,
                               *((host.services_address,) if host else ())).start()
        self.qbt_admin = QBittorrentAdmin(self.qbt)
        self.prowlarr.start()
        self.plex.start()

    def env(self, on_second_host: bool = False) -> dict[str, str]:
        """The processes' environment; on the second host PostgreSQL and Redis are reached over the veth."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKERS_", "PYTEST_"))}
        env.update({
            MARKER_ENV: self.marker,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "HOST": "127.0.0.1", "PORT": str(self.web_port), "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": self.pg.url, "REDIS_URL": self.redis.url, "INSTANCE_DIR": str(self.root / "instance"),
            "SECRET_KEY": "fault-suite-secret", "ADMIN_PASSWORD": "fault suite password",
            "ADMIN_API_TOKEN": API_TOKEN,
            "PROWLARR_URL": self.prowlarr.url, "PROWLARR_API_KEY": self.prowlarr.api_key,
            "DOWNLOAD_CLIENT": "qbittorrent", "DOWNLOAD_CLIENT_URL": self.qbt.url,
            "DOWNLOAD_CLIENT_USERNAME": self.qbt.username, "DOWNLOAD_CLIENT_PASSWORD": self.qbt.password,
            "DOWNLOAD_DIR": str(self.downloads), "MEDIA_DIR": str(self.media),
            "PLEX_URL": self.plex.url, "PLEX_TOKEN": self.plex.token, "PLEX_LIBRARY_ID": self.plex.section,
            **self.settings,
        })
        env.pop("PYTHONPATH", None)
        for group, count in self.worker_counts.items():
            env[f"WORKERS_{group.upper()}"] = str(count)
        if on_second_host:
            assert self.second_host is not None
            env["DATABASE_URL"] = self.pg.url.replace("127.0.0.1", self.second_host.pg_address)
            env["REDIS_URL"] = self.redis.url.replace("127.0.0.1", self.second_host.redis_address)
        return env

    def start(self) -> None:
        """`flask --app app init-db` once, then every Procfile line in its own session (as honcho would)."""
        env = self.env()
        with open(self.logs / "init-db.log", "ab") as log:
            done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "init-db"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"flask --app app init-db failed ({done.returncode}):\n"
                                 + self.log_tail("init-db", 15))
        for name, command in procfile_lines():
            log = open(self.logs / f"{name}.log", "ab")
            log.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self._log_files.append(log)
            self.processes[name] = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._ready, 90, "the stack (healthz with every worker group live)", interval=0.3)
        if self._sampler is None:
            self._sampler = threading.Thread(target=self._sample_forever, daemon=True, name="fault-sampler")
            self._sampler.start()

    def start_workers(self, name: str, groups: list[str], on_second_host: bool = False) -> subprocess.Popen:
        """`python -m workers <groups> --size 1` as its own process (logs/<name>.log), on this host or inside
        the second host's namespace; returns once each of its workers is registered in Redis."""
        env = self.env(on_second_host)
        log = open(self.logs / f"{name}.log", "ab")
        self._log_files.append(log)
        command = [sys.executable, "-m", "workers", *groups, "--size", "1"]
        kwargs = {"cwd": ROOT, "env": env, "stdout": log, "stderr": subprocess.STDOUT, "start_new_session": True}
        if on_second_host:
            assert self.second_host is not None
            process = self.second_host.popen(command, **kwargs)
        else:
            process = subprocess.Popen(command, **kwargs)
        self.processes[name] = process
        hostname = HOSTNAME if on_second_host else socket.gethostname()
        wait_until(lambda: self._registered(name, process, groups, hostname), 60, f"the workers of {name}",
                   interval=0.2)
        return process

    def _registered(self, name: str, process: subprocess.Popen, groups: list[str], hostname: str) -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode} at start:\n" + self.log_tail(name, 30))
        live = self.worker_names()
        return all(any(n.startswith(f"{group}-{hostname}-") for n in live) for group in groups)

    def worker_names(self) -> list[str]:
        """Names (<group>-<hostname>-<pid>-<n>) of the RQ workers registered in Redis now."""
        keys = self.redis.client().smembers("rq:workers")
        return [key.decode().removeprefix("rq:worker:") for key in keys]

    def stop_process(self, name: str, timeout: float = 30) -> None:
        """SIGTERM to one process group of the stack (SIGKILL after `timeout`), as `stop` does for all."""
        process = self.processes.pop(name)
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(10)

    def _ready(self) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"Procfile process {name} exited with {process.returncode} at start:\n"
                                     + self.log_tail(name, 30))
        report = requests.get(f"{self.web_url}/healthz", timeout=2).json()
        workers = report.get("workers", {})
        return report.get("scheduler") == "ok" and all(
            workers.get(group, {}).get("live", 0) >= count for group, count in self.worker_counts.items())

    def stop(self, timeout: float = 30) -> None:
        """Graceful stop as honcho does it: SIGTERM to each Procfile process group, SIGKILL after `timeout`."""
        self.prowlarr.release_all()  # a worker waiting on a held reply would not finish its job
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(10)
        for log in self._log_files:
            log.close()
        self._log_files.clear()

    def kill_all(self) -> list[int]:
        """Whole-stack SIGKILL: every process carrying the marker (Procfile lines, pools, workers)."""
        killed = []
        for pid, _ in marked_processes(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        for process in self.processes.values():
            process.wait(10)
        wait_until(lambda: not marked_processes(self.marker), 10, "killed processes to disappear")
        return killed

    def survivors(self) -> list[tuple[int, str]]:
        return marked_processes(self.marker)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sampler_stop.set()
        if self._sampler is not None:
            self._sampler.join(10)
        try:
            self.stop(timeout=20)
        except Exception:
            pass
        for pid, _ in marked_processes(self.marker):  # never leave anything behind, even after a failure
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for closer in (self.prowlarr.stop, self.plex.stop):
            try:
                closer()
            except Exception:
                pass
        if self.qbt is not None:
            self.qbt.stop()
        for bulky in (self.downloads, self.media, self.staging, self.root / "qbt"):  # the logs stay
            shutil.rmtree(bulky, ignore_errors=True)
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            for conn in self._all_connections:
                conn.close()
            self.pg.remove()

    # ---- processes ---------------------------------------------------------------------------------

    def worker_running(self, job_id: str, timeout: float = 10) -> int:
        """pid of the RQ worker running the job: its RQ job hash names the worker, whose hash holds its pid."""
        connection = self.redis.client()
        found: list[int] = []

        def lookup() -> bool:
            name = connection.hget(f"rq:job:job-{job_id}", "worker_name")
            pid = connection.hget(f"rq:worker:{name.decode()}", "pid") if name else None
            if pid:
                found.append(int(pid))
            return bool(pid)

        wait_until(lookup, timeout, f"the worker running job {job_id}")
        return found[-1]

    def run_end_marker(self, job_id: str) -> bytes | None:
        """When RQ last recorded the end of a run of the job (`ended_at` of its RQ job hash)."""
        return self.redis.client().hget(f"rq:job:job-{job_id}", "ended_at")

    def wait_run_ended(self, job_id: str, before: bytes | None, timeout: float) -> None:
        """Wait until RQ records the end of another run of the job than the one that ended at `before`
        (a resumed stale run ends by RQ saving its job with a new `ended_at`). The worker's own Redis
        entry cannot tell: it expires while the worker is frozen."""
        wait_until(lambda: self.run_end_marker(job_id) not in (before, None), timeout,
                   f"the end of another run of job {job_id}", interval=0.1)

    # ---- API ---------------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.web_url}{path}", timeout=10,
                                headers={"Authorization": f"Bearer {API_TOKEN}"}, **kwargs)

    def book(self, title: str, author: str, **kwargs) -> Book:
        return make_book(title, author, self.downloads, self.staging, **kwargs)

    def request(self, book: Book) -> str:
        response = self.api("POST", "/api/requests", json={"title": book.title, "author": book.author})
        assert response.status_code == 201, response.text
        request_id = response.json()["request"]["id"]
        self.books[request_id] = book
        return request_id

    # ---- database ----------------------------------------------------------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """A read through this thread's own connection (reopened after a PostgreSQL restart)."""
        for attempt in (1, 2):
            conn = getattr(self._connections, "db", None)
            try:
                if conn is None or conn.closed:
                    conn = self._connections.db = self.pg.connect()
                    conn.autocommit = True
                    self._all_connections.append(conn)
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchall()
            except Exception:
                self._connections.db = None
                if conn is not None:
                    conn.close()
                if attempt == 2:
                    raise
        return []

    def jobs(self, request_id: str | None = None) -> list[dict]:
        where, params = ("WHERE request_id = %s", (request_id,)) if request_id else ("", ())
        rows = self.query(f"SELECT id::text, request_id::text, type, status, attempts, polls, error_message, "
                          f"created_at FROM jobs {where} ORDER BY created_at", params)
        keys = ("id", "request_id", "type", "status", "attempts", "polls", "error", "created_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def job_of(self, request_id: str, job_type: str, where: Callable[[dict], bool] = lambda job: True,
               timeout: float = 60) -> dict:
        """The newest job of `job_type` for the request satisfying `where`, waited for."""
        found: list[dict] = []

        def check() -> bool:
            matching = [j for j in self.jobs(request_id) if j["type"] == job_type and where(j)]
            found[:] = matching[-1:]
            return bool(matching)

        wait_until(check, timeout, f"a {job_type} job of request {request_id}", interval=0.02)
        return found[0]

    def request_row(self, request_id: str) -> dict:
        row = self.query("SELECT status, progress, error_message FROM requests WHERE id = %s", (request_id,))[0]
        return {"status": row[0], "progress": row[1], "error": row[2]}

    def download_history(self, request_id: str) -> list[tuple]:
        return self.query("SELECT torrent_hash, download_status FROM download_history WHERE request_id = %s",
                          (request_id,))

    # ---- sampler (timeline + Plex) -------------------------------------------------------------------

    def _sample_forever(self) -> None:
        while not self._sampler_stop.wait(0.2):
            try:
                self._sample()
            except Exception:
                pass  # PostgreSQL or the web app down: that is what the scenarios do
            try:
                self._play_plex()
            except Exception:
                pass

    def sample_now(self) -> None:
        """Record the timeline now (the baseline right after a fault); silent when PostgreSQL is down."""
        try:
            self._sample()
        except Exception:
            pass

    def _sample(self) -> None:
        now = time.monotonic()
        requests_rows = self.query("SELECT id::text, status, progress, error_message FROM requests")
        jobs: dict[str, dict] = {}
        for job_id, request_id, job_type, status, attempts, polls in self.query(
                "SELECT id::text, request_id::text, type, status, attempts, polls FROM jobs "
                "WHERE request_id IS NOT NULL"):
            jobs.setdefault(request_id, {})[job_id] = (job_type, status, attempts, polls)
        for request_id, status, progress, error in requests_rows:
            self.timeline.add(request_id, Snapshot(now, status, progress, error, jobs.get(request_id, {})))

    def _play_plex(self) -> None:
        """Plex sees a book once it is in MEDIA_DIR; the Recently Added Check runs (Trigger Now) while a
        request waits in `downloaded`, at most one run at a time."""
        waiting = [rid for rid in self.books if self.timeline.statuses(rid)[-1:] == ["downloaded"]
                   and rid not in self.hidden_from_plex]
        if not waiting:
            return
        titles = {item["title"] for item in self.plex.items}
        for request_id in waiting:
            book = self.books[request_id]
            if book.title not in titles:
                self.plex.items.append(self.plex.album(book.title, book.author))
        if self.triggered_checks:
            last = self.query("SELECT status, created_at FROM jobs WHERE id = %s", (self.triggered_checks[-1],))
            if last and last[0][0] in UNFINISHED_JOB_STATUSES and time.monotonic() - self._last_trigger < 20:
                return
            if time.monotonic() - self._last_trigger < 2:
                return
        schedule_id = self._check_schedule_id()
        response = self.api("POST", f"/api/admin/jobs/{schedule_id}/trigger")
        if response.status_code == 200:
            self.triggered_checks.append(response.json()["jobId"])
            self._last_trigger = time.monotonic()

    _last_trigger = 0.0
    _schedule_id: str | None = None

    def _check_schedule_id(self) -> str:
        if self._schedule_id is None:
            schedules = self.api("GET", "/api/admin/jobs").json()["jobs"]
            self._schedule_id = next(s["id"] for s in schedules if s["type"] == "plex_recently_added_check")
        return self._schedule_id

    # ---- waiting and diagnosis ----------------------------------------------------------------------

    def wait_settled(self, request_ids: Iterable[str], timeout: float) -> dict[str, str]:
        """Wait until every request is in a settled status (available or a terminal/waiting one)."""
        ids = list(request_ids)
        deadline = time.monotonic() + timeout
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                statuses = {rid: self.request_row(rid)["status"] for rid in ids}
            except Exception:
                statuses = {}
            if statuses and all(s in SETTLED_REQUEST_STATUSES for s in statuses.values()):
                return statuses
            time.sleep(0.2)
        return statuses

    def wait_jobs_finished(self, timeout: float = 30) -> list[dict]:
        """Wait until no jobs row is unfinished; returns the unfinished rows left at the end."""
        deadline = time.monotonic() + timeout
        left: list[dict] = []
        while time.monotonic() < deadline:
            left = [j for j in self.jobs() if j["status"] in UNFINISHED_JOB_STATUSES]
            if not left:
                return []
            time.sleep(0.3)
        return left

    def log_tail(self, name: str, lines: int = 40, pattern: str | None = None) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace").splitlines()
        if pattern:
            text = [line[:400] for line in text if re.search(pattern, line)]  # tracebacks are one long line
        return "\n".join(text[-lines:])

    def jobs_ended(self, name: str) -> dict[str, list[str]]:
        """Job id -> the end statuses (completed, retrying, ...) of its runs in process `name`'s log: the
        worker's one line per finished run (workers/worker.py), which says where a job ran."""
        ended: dict[str, list[str]] = {}
        path = self.logs / f"{name}.log"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            found = re.search(r"logger=workers\.job .*? job=(\S+) .*?status=(\w+)", line)
            if found:
                ended.setdefault(found[1], []).append(found[2])
        return ended

    def written_state(self, request_ids: Iterable[str]) -> dict[str, object]:
        """Everything a run of these requests can write: their rows, their jobs and events, download records,
        torrents, and the library's files (inode and mtime: a file imported again is a new one)."""
        ids = list(request_ids)
        jobs = self.query("SELECT * FROM jobs WHERE request_id::text = ANY(%s) ORDER BY id", (ids,))
        files = {str(p.relative_to(self.media)): (p.stat().st_ino, p.stat().st_mtime_ns)
                 for p in sorted(self.media.rglob("*")) if p.is_file()}
        return {
            "requests": self.query("SELECT * FROM requests WHERE id::text = ANY(%s) ORDER BY id", (ids,)),
            "audiobooks": self.query("SELECT * FROM audiobooks WHERE id IN (SELECT audiobook_id FROM requests "
                                     "WHERE id::text = ANY(%s)) ORDER BY id", (ids,)),
            "blocklist": self.query("SELECT * FROM blocked_releases ORDER BY id"),
            "jobs": jobs,
            "events": self.query("SELECT id, job_id, level, message FROM job_events WHERE job_id::text = ANY(%s) "
                                 "ORDER BY id", ([str(job[0]) for job in jobs],)),
            "download_history": self.query("SELECT * FROM download_history WHERE request_id::text = ANY(%s) "
                                           "ORDER BY id", (ids,)),
            "torrents": sorted(t["hash"] for t in self.qbt_admin.torrents()),
            "files": files,
        }

    def diagnose(self) -> str:
        """Everything a reader needs to see why a scenario failed: timelines, jobs, log errors."""
        parts = []
        for request_id, book in self.books.items():
            try:
                row = self.request_row(request_id)
            except Exception as exc:
                row = {"status": f"<unreadable: {exc}>", "error": None}
            parts.append(f"request {request_id} ({book.title}): {row['status']} error={row['error']!r}")
            parts.append(f"  statuses seen: {' -> '.join(self.timeline.statuses(request_id))}")
            try:
                for job in self.jobs(request_id):
                    parts.append(f"  job {job['id']} {job['type']:<17} {job['status']:<9} attempts={job['attempts']} "
                                 f"polls={job['polls']} error={(job['error'] or '')[:300]!r}")
            except Exception as exc:
                parts.append(f"  jobs unreadable: {exc}")
        try:
            others = [j for j in self.jobs() if j["request_id"] is None and j["status"] in UNFINISHED_JOB_STATUSES]
            for job in others:
                parts.append(f"system job {job['id']} {job['type']} {job['status']} error={job['error']!r}")
        except Exception:
            pass
        for name in self.processes:
            tail = self.log_tail(name, 25, r"ERROR|CRITICAL|Traceback|Error:|WARNING|level=(warn|error|critical)")
            if tail:
                parts.append(f"--- {name}.log (warnings and errors, last 25) ---\n{tail}")
        parts.append(f"(full logs: {self.logs})")
        return "\n".join(parts)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

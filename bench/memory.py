"""Memory (PSS) of the whole Procfile stack under honcho: idle, then after a load.

Starts its own redis-server on a free port and a fresh PostgreSQL database (rmab_bench_memory on the
shared server), runs `honcho start` on the Procfile, waits until GET /healthz says ok, and sums PSS
(/proc/<pid>/smaps_rollup: shared pages divided among the processes sharing them) over every process
of honcho's tree. Then the load, in two rounds measured after each (the second shows whether memory
keeps growing): 1,000 `noop` jobs (add_job in a subprocess against the same database and Redis, until
all are completed) and a full pipeline run of a few books (real qbittorrent-nox, the fake Prowlarr and
Plex of tests/fakes: search → download → monitor → organize → Plex check). Stops everything it
started and drops the database.

    python bench/memory.py                         # the Procfile as it is (one supervisor for every group)
    python bench/memory.py --layout per-group      # one `python -m workers <group>` line per group instead
    python bench/memory.py --root /tmp/rmab-old    # another checkout, e.g. `git archive HEAD | tar -x -C /tmp/rmab-old`
    python bench/memory.py --jobs 0 --books 0      # idle only
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import requests  # noqa: E402

from common import free_port, wait_until  # noqa: E402

GOAL_IDLE_MB = 400.0
GOAL_LOADED_MB = 450.0
MARKER_ENV = "RMAB_BENCH_MEMORY"
API_TOKEN = "bench-memory-api-token-0123456789"
SETTLE_SECONDS = 5.0

# The job every load runs, in a subprocess of the checkout under test (its own code and schema).
ENQUEUE_NOOPS = """
import sys, time
from app.config import get_settings
from app.db import bind_database
from app.jobs.service import add_job
from app.models import Job
bind_database(get_settings().effective_database_url)
count, timeout = int(sys.argv[1]), float(sys.argv[2])
started = time.monotonic()
ids = [add_job("noop", {}) for _ in range(count)]
done = 0
while time.monotonic() - started < timeout:
    done = Job.select().where(Job.id.in_(ids), Job.status == "completed").count()
    if done == count:
        print(f"{count} noop jobs completed in {time.monotonic() - started:.1f} s")
        sys.exit(0)
    time.sleep(0.5)
sys.exit(f"only {done} of {count} noop jobs completed within {timeout:.0f} s")
"""


# --- the process tree -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    pid: int
    ppid: int
    role: str
    category: str  # web, scheduler, workers (every worker line), honcho and shells
    pss_kb: int
    rss_kb: int

    @property
    def pss_mb(self) -> float:
        return self.pss_kb / 1024


def _ppid(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2:].split()[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _memory_kb(pid: int) -> tuple[int, int]:
    values = {"Pss": 0, "Rss": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values["Pss"], values["Rss"]


def tree(root_pid: int) -> list[tuple[int, int]]:
    """(pid, ppid) of root_pid and every descendant, parents before children."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _ppid(int(entry))
            if ppid is not None:
                parents[int(entry)] = ppid
    found, level = [(root_pid, parents.get(root_pid, 0))], [root_pid]
    while level:
        level = sorted(pid for pid, ppid in parents.items() if ppid in set(level))
        found += [(pid, parents[pid]) for pid in level]
    return found


def procfile_lines(procfile: str) -> dict[str, str]:
    """{name: command} of a Procfile's lines."""
    lines = {}
    for raw in procfile.splitlines():
        name, _, command = raw.partition(":")
        if command.strip() and not raw.lstrip().startswith("#"):
            lines[name.strip()] = command.strip()
    return lines


def _procfile_line(pid: int) -> str | None:
    """The Procfile line a process belongs to: honcho puts HONCHO_PROCESS_NAME=<line>.1 in its environment."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"HONCHO_PROCESS_NAME="):
            return item.split(b"=", 1)[1].decode().rsplit(".", 1)[0]
    return None


def role(pid: int, ppid: int, command: str, line: str | None, parent_role: str, worker_names: dict[int, str]) -> str:
    """honcho itself, the `sh -c` of a Procfile line, the line's process (named after the line), an RQ
    worker (by its registered name) or another child of the line's process."""
    if line is None:
        return "honcho" if "honcho" in command else command[:38]
    if command.startswith(("/bin/sh ", "sh ", "/bin/bash ", "bash ", "/usr/bin/bash ")):
        return f"{line} (sh)"
    if pid in worker_names:
        return f"{line}: worker {worker_names[pid]}"
    return line if parent_role in ("honcho", f"{line} (sh)") else f"{line}: child"


def registered_workers(redis_url: str) -> dict[int, str]:
    """pid → RQ worker name without host and pid (group-index) of every worker registered in Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        names = {}
        for key in client.smembers("rq:workers"):
            fields = client.hmget(key, "pid", "name")
            if fields[0]:
                name = (fields[1] or key).decode().rsplit(":", 1)[-1]
                names[int(fields[0])] = re.sub(r"-[^-]+-\d+-(\d+)$", r"-\1", name)
        return names
    finally:
        client.close()


def sample(root_pid: int, redis_url: str, procfile: str) -> list[Sample]:
    worker_lines = {name for name, command in procfile_lines(procfile).items() if "-m workers" in command}
    worker_names = registered_workers(redis_url)
    roles: dict[int, str] = {}
    samples = []
    for pid, ppid in tree(root_pid):  # parents first
        line = _procfile_line(pid)
        roles[pid] = role(pid, ppid, _cmdline(pid), line, roles.get(ppid, "honcho"), worker_names)
        category = ("honcho and shells" if line is None or roles[pid].endswith("(sh)") else
                    "workers" if line in worker_lines else line)
        pss, rss = _memory_kb(pid)
        samples.append(Sample(pid, ppid, roles[pid], category, pss, rss))
    return samples


def print_table(title: str, samples: list[Sample], before: dict[int, Sample] | None = None) -> float:
    """The per-process table (with each process's change since `before`) and the totals; returns the total MB."""
    print(f"\n{title}: {len(samples)} processes")
    print(f"{'pid':>8} {'ppid':>8}  {'process':<44} {'PSS MB':>8} {'RSS MB':>8}" + ("  change" if before else ""))
    for item in samples:
        change = ""
        if before is not None:
            old = before.get(item.pid)
            change = f"  {item.pss_mb - old.pss_mb:+6.1f}" if old else "  (new)"
        print(f"{item.pid:>8} {item.ppid:>8}  {item.role:<44} {item.pss_mb:>8.1f} {item.rss_kb / 1024:>8.1f}{change}")
    groups: dict[str, float] = {}
    for item in samples:
        groups[item.category] = groups.get(item.category, 0.0) + item.pss_mb
    total = sum(item.pss_mb for item in samples)
    change = f" ({total - sum(item.pss_mb for item in before.values()):+.1f} MB)" if before is not None else ""
    print("  " + ", ".join(f"{name} {mb:.1f} MB" for name, mb in groups.items()) + f"; total {total:.1f} MB{change}")
    return total


# --- services ---------------------------------------------------------------------------------------------

def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    import redis

    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: _answers(redis.Redis.from_url(url)), 20, "redis-server")
    return server, url


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def fresh_database(url: str) -> None:
    _admin_database(url, create=True)


def drop_database(url: str) -> None:
    _admin_database(url, create=False)


def _admin_database(url: str, *, create: bool) -> None:
    """Drop the database of `url` (forcing its connections out), then create it again when `create`."""
    import psycopg2
    from playhouse.db_url import parse as parse_db_url
    from psycopg2 import sql

    params = parse_db_url(url)
    name = params.pop("database")
    connection = psycopg2.connect(dbname="postgres", **params)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if create:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


# --- the stack --------------------------------------------------------------------------------------------

def procfile_for(root: Path, layout: str, env: dict[str, str]) -> str:
    """The checkout's Procfile, or with its worker line(s) replaced by one `python -m workers <group>` each."""
    text = (root / "Procfile").read_text()
    if layout == "procfile":
        return text
    listing = subprocess.run([sys.executable, "-m", "workers", "--list"], cwd=root, env=env, capture_output=True,
                             text=True, check=True).stdout
    groups = re.findall(r"^(\w+) \(\d+ process", listing, flags=re.MULTILINE)
    kept = [line for line in text.splitlines() if line.strip() and "-m workers" not in line]
    return "\n".join(kept + [f"{group}: python -m workers {group}" for group in groups]) + "\n"


def stack_env(root: Path, workdir: Path, database_url: str, redis_url: str, port: int, marker: str,
              services: dict[str, str]) -> dict[str, str]:
    dropped = ("WORKERS_", "DATABASE_URL", "REDIS_URL", "PLEX_", "PROWLARR_", "DOWNLOAD_", "MEDIA_DIR", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update({
        MARKER_ENV: marker,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # `python`, `flask`: no shims
        "PYTHONPATH": str(root),
        "HOST": "127.0.0.1", "PORT": str(port),
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "INSTANCE_DIR": str(workdir / "instance"),
        "SECRET_KEY": "bench-memory-secret", "ADMIN_PASSWORD": "bench memory password", "ADMIN_API_TOKEN": API_TOKEN,
        "LOG_LEVEL": "warning", "MONITOR_POLL_SECONDS": "1",
        **services,
    })
    return env


def start_stack(root: Path, workdir: Path, procfile: str, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    (workdir / "Procfile").write_text(procfile)
    (workdir / "empty.env").write_text("")
    log = workdir / "honcho.log"
    honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "--no-colour", "-f", str(workdir / "Procfile"),
                               "-d", str(root), "-e", str(workdir / "empty.env")],
                              cwd=root, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    return honcho, log


def healthy(port: int) -> bool:
    return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json().get("status") == "ok"


def marked_processes(marker: str) -> list[int]:
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if needle in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def stop_stack(honcho: subprocess.Popen, marker: str) -> None:
    """SIGTERM to honcho (it stops every line), then SIGKILL whatever of the stack still runs."""
    if honcho.poll() is None:
        honcho.send_signal(signal.SIGTERM)
        try:
            honcho.wait(30)
        except subprocess.TimeoutExpired:
            pass
    for _ in range(50):
        left = marked_processes(marker)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    if honcho.poll() is None:
        honcho.kill()
    honcho.wait(10)


# --- the loads --------------------------------------------------------------------------------------------

def run_noops(root: Path, env: dict[str, str], count: int) -> None:
    done = subprocess.run([sys.executable, "-c", ENQUEUE_NOOPS, str(count), "600"], cwd=root, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"noop load failed: {done.stdout}{done.stderr}")
    print(done.stdout.strip())


class Pipeline:
    """Books that travel the whole pipeline: fake Prowlarr offers each, real qBittorrent already has the
    files (a recheck completes them), organize copies them, the fake Plex then lists them."""

    def __init__(self, workdir: Path, books: int):
        from daemons import QBittorrent
        from fakes.plex import FakePlex
        from fakes.prowlarr import FakeProwlarr

        self.books = books
        self.downloads, self.media = workdir / "downloads", workdir / "media"
        self.downloads.mkdir()
        self.media.mkdir()
        self.qbt = QBittorrent(workdir / "qbt", self.downloads)
        # Plex sees MEDIA_DIR under the same path; the books it lists are added below, not scanned
        self.prowlarr, self.plex = FakeProwlarr(), FakePlex(locations={str(self.media): None})

    def start(self) -> dict[str, str]:
        self.qbt.start()
        self.prowlarr.start()
        self.plex.start()
        return {"PROWLARR_URL": self.prowlarr.url, "PROWLARR_API_KEY": self.prowlarr.api_key,
                "DOWNLOAD_CLIENT": "qbittorrent", "DOWNLOAD_CLIENT_URL": self.qbt.url,
                "DOWNLOAD_CLIENT_USERNAME": self.qbt.username, "DOWNLOAD_CLIENT_PASSWORD": self.qbt.password,
                "DOWNLOAD_DIR": str(self.downloads), "MEDIA_DIR": str(self.media), "PLEX_URL": self.plex.url,
                "PLEX_TOKEN": self.plex.token, "PLEX_LIBRARY_ID": self.plex.section}

    def stop(self) -> None:
        for service in (self.prowlarr, self.plex):
            try:
                service.stop()
            except Exception:
                pass
        self.qbt.stop()

    def _books(self, first: int) -> list[tuple[str, str]]:
        """(title, author) of books first … first+self.books-1: distinct titles, so every round requests new ones."""
        words = ["Amber", "Harbor", "Lantern", "Meridian", "Orchard", "Quarry", "Saffron", "Tundra", "Willow",
                 "Zephyr", "Cobalt", "Ember"]
        authors = ["Ada Quill", "Bram Holt", "Cora Vance", "Dmitri Lusk", "Esme Farrow", "Felix Odum"]
        return [(f"The {words[i % len(words)]} {words[(i * 5 + 3) % len(words)]} Chronicle {i + 1}",
                 authors[i % len(authors)]) for i in range(first, first + self.books)]

    def run(self, port: int, round_number: int) -> None:
        from app.integrations.torrentfile import make_torrent

        from fakes.prowlarr import FakeRelease

        base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {API_TOKEN}"}
        books = self._books(round_number * self.books)
        for title, author in books:
            folder = self.downloads / f"{author} - {title} [M4B]"
            folder.mkdir()
            (folder / "Part 1.m4b").write_bytes(os.urandom(300_000))
            (folder / "cover.jpg").write_bytes(b"jpeg")
            self.prowlarr.releases.append(FakeRelease(f"{author} - {title} (Unabridged) [M4B]", 700 * 2**20,
                                                      seeders=30, torrent=make_torrent(folder)))
        started = time.monotonic()
        ids = []
        for title, author in books:
            reply = requests.post(f"{base}/api/requests", json={"title": title, "author": author}, headers=headers,
                                  timeout=10)
            reply.raise_for_status()
            ids.append(reply.json()["request"]["id"])

        def statuses() -> list[str]:
            return [requests.get(f"{base}/api/requests/{i}", headers=headers, timeout=10).json()["request"]["status"]
                    for i in ids]

        wait_until(lambda: all(s == "downloaded" for s in statuses()), 300, "every book to be downloaded", 1)
        self.plex.items.extend(self.plex.album(title, author) for title, author in books)
        schedules = requests.get(f"{base}/api/admin/jobs", headers=headers, timeout=10).json()
        rows = schedules.get("jobs", schedules) if isinstance(schedules, dict) else schedules
        check = next(row for row in rows if row["type"] == "plex_recently_added_check")

        def triggered() -> bool:  # 409 while a run of the check is still under way: try again
            reply = requests.post(f"{base}/api/admin/jobs/{check['id']}/trigger", headers=headers, timeout=10)
            if reply.status_code != 409:
                reply.raise_for_status()
            return reply.status_code != 409

        wait_until(triggered, 60, "Trigger Now of the Recently Added Check", 1)
        wait_until(lambda: all(s == "available" for s in statuses()), 120, "every book to be available", 1)
        print(f"{len(ids)} books went pending → available in {time.monotonic() - started:.1f} s")


# --- main -------------------------------------------------------------------------------------------------

def verdict(label: str, total: float, goal: float) -> str:
    return f"{label} {total:.1f} MB <= {goal:.0f} MB: {'ok' if total <= goal else 'NOT MET'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run (default: this one)")
    parser.add_argument("--layout", choices=("procfile", "per-group"), default="procfile",
                        help="procfile: the checkout's Procfile; per-group: one worker line per group")
    parser.add_argument("--jobs", type=int, default=1000, help="noop jobs of the load (0: none)")
    parser.add_argument("--books", type=int, default=6, help="books through the whole pipeline (0: none)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="load rounds, measured after each (a second round shows whether memory keeps growing)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_MEMORY_DATABASE_URL",
                                                                 "postgresql://127.0.0.1:5432/rmab_bench_memory"))
    args = parser.parse_args()
    root = args.root.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="rmab-bench-memory-"))
    marker = uuid.uuid4().hex
    redis_server, redis_url = start_redis(workdir)
    fresh_database(args.database_url)
    pipeline = Pipeline(workdir, args.books) if args.books else None
    honcho = None
    try:
        services = pipeline.start() if pipeline else {}
        port = free_port()
        env = stack_env(root, workdir, args.database_url, redis_url, port, marker, services)
        procfile = procfile_for(root, args.layout, env)
        print(f"root {root}, layout {args.layout}; Procfile:")
        print("".join(f"  {line}\n" for line in procfile.splitlines()))
        honcho, log = start_stack(root, workdir, procfile, env)
        wait_until(lambda: _died(log) if honcho.poll() is not None else healthy(port), 180, "GET /healthz ok")
        time.sleep(SETTLE_SECONDS)
        idle = sample(honcho.pid, redis_url, procfile)
        idle_total = print_table("idle", idle)
        loaded_totals = []
        previous = idle
        for round_number in range(args.rounds if args.jobs or pipeline else 0):
            if args.jobs:
                run_noops(root, env, args.jobs)
            if pipeline:
                pipeline.run(port, round_number)
            time.sleep(SETTLE_SECONDS)
            loaded = sample(honcho.pid, redis_url, procfile)
            title = (f"after load round {round_number + 1} of {args.rounds} ({args.jobs} noop jobs, {args.books} books "
                     f"through the pipeline each)")
            loaded_totals.append(print_table(title, loaded, {item.pid: item for item in previous}))
            previous = loaded
        print()
        print(verdict("idle", idle_total, GOAL_IDLE_MB))
        for round_number, total in enumerate(loaded_totals, 1):
            print(verdict(f"after load round {round_number}", total, GOAL_LOADED_MB))
        return 0
    finally:
        if honcho is not None:
            stop_stack(honcho, marker)
        if pipeline:
            pipeline.stop()
        redis_server.terminate()
        redis_server.wait(10)
        drop_database(args.database_url)
        shutil.rmtree(workdir, ignore_errors=True)


def _died(log: Path) -> bool:
    raise SystemExit("the stack exited before it was healthy:\n" + log.read_text()[-3000:])


if __name__ == "__main__":
    sys.exit(main())

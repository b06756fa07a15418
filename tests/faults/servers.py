"""A test's own PostgreSQL cluster and Redis server on free loopback ports, which it may crash.

Both are real servers in a temporary directory, so a scenario can kill or restart them without
touching the machine's services. PostgreSQL refuses to run as root: the cluster belongs to the
`postgres` system user and the postmaster runs as that user (Popen(user=...)), so `process.pid` is
the postmaster itself.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import redis

from daemons import free_port


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL server binaries (Debian keeps them per major version)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql "
                           "(bash .ci/run installs them)")
    return versions[-1].parent


PG_BIN = _postgres_bin()
PG_USER = "postgres"
DATABASE = "rmab"


def wait_until(check, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `check()` until it is true; exceptions other than AssertionError count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except AssertionError:
            raise  # a check that knows it will never pass (a process died)
        except Exception as exc:  # the server is still starting
            last_error = exc
        time.sleep(interval)
    raise RuntimeError(f"{what} not ready within {timeout} s (last error: {last_error})")


class PostgresServer:
    """initdb into a temp dir owned by `postgres`; start/stop/crash the postmaster; user root, trust auth."""

    def __init__(self, also_listen: str | None = None, client: str | None = None) -> None:
        """`also_listen`: an address to listen on besides 127.0.0.1 (a second host reaches it there), and
        `client`: that host's own address, the only other one let in (trust, like loopback)."""
        # Not under pytest's tmp_path: that is root-only (0700) and the postgres user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="rmab-faults-pg-"))
        self.data, self.sockets = self.root / "data", self.root / "sockets"
        self.sockets.mkdir()
        shutil.chown(self.root, PG_USER)
        shutil.chown(self.sockets, PG_USER)
        self.port = free_port()
        self.url = f"postgresql://root@127.0.0.1:{self.port}/{DATABASE}"
        self.log_path = self.root / "postgres.log"
        self.process: subprocess.Popen | None = None
        subprocess.run(["runuser", "-u", PG_USER, "--", str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                        "-U", "root", "-N"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.listen = ",".join(["127.0.0.1", *([also_listen] if also_listen else [])])
        if client:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {client}/32 trust\n")

    def start(self) -> PostgresServer:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.sockets),
                 "-c", f"listen_addresses={self.listen}", "-c", "fsync=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=200"],
                user=PG_USER, group=PG_USER, extra_groups=[], cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_until(self._accepts, 30, "PostgreSQL")
        return self

    def _accepts(self) -> bool:
        psycopg2.connect(host="127.0.0.1", port=self.port, user="root", dbname="postgres", connect_timeout=1).close()
        return True

    def create_database(self) -> None:
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="root", dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            conn.close()

    def connect(self):
        return psycopg2.connect(host="127.0.0.1", port=self.port, user="root", dbname=DATABASE, connect_timeout=2)

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT): clients are cut off at once and the next start replays the WAL,
        as after a crash."""
        self._stop(signal.SIGQUIT)

    def stop(self) -> None:
        self._stop(signal.SIGINT)  # fast shutdown

    def _stop(self, signum: int) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process and self.process.poll() is None else []

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """redis-server with no persistence at all: a crash (SIGKILL) and start loses everything it held."""

    def __init__(self, root: Path, also_bind: str | None = None) -> None:
        self.root = root
        self.bind = ["127.0.0.1", *([also_bind] if also_bind else [])]  # a second host reaches it at also_bind
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        with open(self.root / "redis.log", "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", *self.bind, "--save", "", "--appendonly",
                 "no", "--dir", str(self.root), "--daemonize", "no",
                 # no password, so protected mode would refuse the second host; it binds only to named addresses
                 "--protected-mode", "no" if len(self.bind) > 1 else "yes"], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_until(lambda: redis.Redis(port=self.port, socket_timeout=1).ping(), 20, "Redis")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=2)

    def crash(self) -> None:
        """SIGKILL: whatever Redis held is gone (no RDB, no AOF)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process and self.process.poll() is None else []

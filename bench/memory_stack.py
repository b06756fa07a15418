"""Starting and stopping the memory bench's stack: its own redis-server, a fresh PostgreSQL database, and
`honcho start` on a Procfile with every process marked (RMAB_BENCH_MEMORY in its environment) so that
stop_stack kills whatever of it is left."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from common import free_port, wait_until

MARKER_ENV = "RMAB_BENCH_MEMORY"
API_TOKEN = "bench-memory-api-token-0123456789"


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
    kept = [line for line in text.splitlines() if line.strip() and "-m workers" not in line]
    return "\n".join(kept + [f"{group}: python -m workers {group}" for group in worker_groups(root, env)]) + "\n"


def worker_groups(root: Path, env: dict[str, str]) -> list[str]:
    """The worker groups of the checkout, from `python -m workers --list`."""
    listing = subprocess.run([sys.executable, "-m", "workers", "--list"], cwd=root, env=env, capture_output=True,
                             text=True, check=True).stdout
    return re.findall(r"^(\w+) \(\d+ process", listing, flags=re.MULTILINE)


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

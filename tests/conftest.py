"""Test harness: real PostgreSQL and real Redis, each test isolated.

- PostgreSQL: a dedicated database (TEST_DATABASE_URL, default postgresql://127.0.0.1:5432/rmab_test),
  created when missing, migrated once per session, every table emptied before each test.
  Worker subprocesses write to it too, so per-test transactions cannot be used.
- Redis: TEST_REDIS_URL (default redis://127.0.0.1:6379/13), flushed before and after each test.
A missing server is a failure with a clear message, never a skip.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import peewee
import psycopg2
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/rmab_test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")

# Test processes must never pick up a developer's .env or real services.
for _name in list(os.environ):
    if _name in {"DATABASE_URL", "REDIS_URL", "ADMIN_PASSWORD", "ADMIN_API_TOKEN", "PLEX_URL", "PLEX_TOKEN",
                 "PROWLARR_URL", "PROWLARR_API_KEY"}:
        del os.environ[_name]

ADMIN_PASSWORD = "correct horse battery"
API_TOKEN = "test-api-token-0123456789"


def _ensure_postgres_database(url: str) -> None:
    from app.db import create_postgres_database_if_missing

    try:
        create_postgres_database_if_missing(url)
    except psycopg2.OperationalError as exc:
        pytest.exit(f"PostgreSQL is not reachable at {url} ({exc}). Start it (see README) or set "
                    f"TEST_DATABASE_URL.", returncode=3)


def make_settings(tmp_path: Path, **overrides):
    from app.config import load_settings

    env = {
        "DATABASE_URL": TEST_DATABASE_URL,
        "REDIS_URL": TEST_REDIS_URL,
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ADMIN_API_TOKEN": API_TOKEN,
        "SECRET_KEY": "test-secret-key",
        "LOG_LEVEL": "warning",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return load_settings(env, env_file=None), env


@pytest.fixture(scope="session")
def _database_ready():
    _ensure_postgres_database(TEST_DATABASE_URL)
    from app.db import bind_database
    from app.migrations import migrate

    bind_database(TEST_DATABASE_URL)
    migrate()
    yield


@pytest.fixture
def redis_conn():
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        connection.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {TEST_REDIS_URL} ({exc}). Start it (see README).")
    connection.flushdb()
    yield connection
    connection.flushdb()


def _empty_tables() -> None:
    from app.db import database
    from app.models import ALL_MODELS

    db = database.obj
    names = ", ".join(m._meta.table_name for m in ALL_MODELS)
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(f"TRUNCATE {names} CASCADE")
    else:
        for model in reversed(ALL_MODELS):
            model.delete().execute()


@pytest.fixture
def settings_env(tmp_path, _database_ready, redis_conn):
    """Settings bound for this test; the dict of env vars lets subprocesses see the same."""
    from app.config import set_settings
    from app.db import bind_database

    settings, env = make_settings(tmp_path)
    set_settings(settings)
    bind_database(TEST_DATABASE_URL)
    _empty_tables()
    yield settings, env
    set_settings(None)


@pytest.fixture
def settings(settings_env):
    return settings_env[0]


@pytest.fixture
def use_settings(tmp_path, settings_env):
    """Replace settings for one test: use_settings(REDIS_KEEP_COMPLETED=5)."""
    from app.config import set_settings

    def apply(**overrides):
        new, env = make_settings(tmp_path, **overrides)
        set_settings(new)
        settings_env[1].update(env)
        return new

    return apply


@pytest.fixture
def flask_app(settings):
    from app import create_app
    from app.config import get_settings

    flask_app = create_app(get_settings())  # the test's settings, including use_settings overrides
    flask_app.config.update(TESTING=True)
    return flask_app


@pytest.fixture
def client(flask_app):
    return flask_app.test_client()


@pytest.fixture
def admin_client(flask_app):
    """A test client logged in through the real login form (CSRF token included)."""
    import re

    client = flask_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def drain(queues: list[str], until: Callable[[], bool] | None = None, timeout: float = 30.0) -> None:
    """Run queued and due-delayed jobs in-process (JobWorker, burst) until `until()` or the queues are idle."""
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    from app.jobs.queues import get_redis
    from workers.worker import JobWorker

    connection = get_redis()
    worker = JobWorker(queues, connection=connection)
    deadline = time.monotonic() + timeout
    while True:
        for name in queues:
            queue = Queue(name, connection=connection)
            registry = ScheduledJobRegistry(queue=queue)
            for job_id in registry.get_jobs_to_schedule(time.time()):
                from rq.job import Job as RQJob

                job = RQJob.fetch(job_id, connection=connection)
                registry.remove(job_id)
                queue._enqueue_job(job)
        worker.work(burst=True)
        if until is None:
            pending = sum(ScheduledJobRegistry(name, connection=connection).count for name in queues)
            if pending == 0:
                return
        elif until():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs on {queues} did not settle within {timeout} s")
        time.sleep(0.05)


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.1, message: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT) + os.pathsep + str(ROOT / "tests")}
    handle = open(log_path, "wb")
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=full_env, stdout=handle, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module", params=["qbittorrent", "transmission"])
def daemon(request, tmp_path_factory):
    """The real torrent client of each kind, started once per test module that uses it (tests/daemons.py)."""
    from daemons import QBittorrent, Transmission

    root = tmp_path_factory.mktemp(request.param)
    downloads = root / "downloads"
    downloads.mkdir()
    cls = QBittorrent if request.param == "qbittorrent" else Transmission
    instance = cls(root / "profile", downloads).start()
    yield instance
    instance.stop()


@pytest.fixture
def prowlarr():
    """The fake Prowlarr on a free port (modules that need another shape define their own)."""
    from fakes.prowlarr import FakeProwlarr

    fake = FakeProwlarr().start()
    yield fake
    fake.stop()

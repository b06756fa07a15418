"""Plain helpers and constants that tests import (`from helpers import drain`); fixtures live in conftest.py.

Nothing here is a fixture, so importing this module never changes what pytest collects.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/rmab_test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")

ADMIN_PASSWORD = "correct horse battery"
API_TOKEN = "test-api-token-0123456789"

__all__ = ["ADMIN_PASSWORD", "API_TOKEN", "HOSTILE", "ROOT", "TEST_DATABASE_URL", "TEST_REDIS_URL", "SeededLonger",
           "book_in_client", "client_labels", "csrf_token", "drain", "make_settings", "run_cleanup", "serve_app",
           "start_process", "start_scheduler", "stop_process", "wait_for"]


def make_settings(tmp_path: Path, **overrides):
    """Settings for a test (real PostgreSQL and Redis, instance dir under tmp_path) and the env dict behind them."""
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


def client_labels(client, info_hash: str) -> dict:
    """How the download client files a torrent, read over its API: qBittorrent's category, tags (a set), save
    path and automatic management, or Transmission's labels and download dir (its only labels)."""
    from app.integrations.transmission import TransmissionClient

    if isinstance(client, TransmissionClient):
        torrents = client.call("torrent-get", {"ids": [info_hash], "fields": ["labels", "downloadDir"]})["torrents"]
        return {"labels": torrents[0]["labels"], "save_path": torrents[0]["downloadDir"].rstrip("/")}
    client.version()  # logged in
    response = client.session.get(f"{client.url}/api/v2/torrents/info", params={"hashes": info_hash}, timeout=5)
    item = response.json()[0]
    return {"category": item["category"], "tags": {tag for tag in item["tags"].split(", ") if tag},
            "save_path": item["save_path"].rstrip("/"), "auto_tmm": item["auto_tmm"]}


def drain(queues: list[str], until: Callable[[], bool] | None = None, timeout: float = 30.0) -> None:
    """Run queued and due-delayed jobs in-process (JobWorker, burst) until `until()` or the queues are idle."""
    from rq import Queue
    from rq.job import Job as RQJob
    from rq.registry import ScheduledJobRegistry

    from app.jobs import poll_batches
    from app.jobs.queues import get_redis
    from workers.worker import JobWorker

    class DrainWorker(JobWorker):
        """JobWorker without RQ's command channel: every work() call would start a pubsub thread and then wait
        up to 1 s for it to stop, and nothing sends commands to a drain in the test's own thread."""

        def subscribe(self) -> None:
            pass

        def unsubscribe(self) -> None:
            pass

    connection = get_redis()
    worker = DrainWorker(queues, connection=connection)
    deadline = time.monotonic() + timeout
    while True:
        for name in queues:
            queue = Queue(name, connection=connection)
            registry = ScheduledJobRegistry(queue=queue)
            for job_id in registry.get_jobs_to_schedule(time.time()):
                job = RQJob.fetch(job_id, connection=connection)
                registry.remove(job_id)
                queue._enqueue_job(job)
        if poll_batches.BATCH_QUEUE in queues and poll_batches.enabled():
            poll_batches.promote(connection)  # due download polls, as the scheduler process does
        worker.work(burst=True)
        if until is None:
            pending = sum(ScheduledJobRegistry(name, connection=connection).count for name in queues)
            if poll_batches.BATCH_QUEUE in queues:
                pending += connection.zcard(poll_batches.DUE_KEY)
            if pending == 0:
                return
        elif until():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs on {queues} did not settle within {timeout} s")
        time.sleep(0.05)


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.1, message: str = "") -> object:
    """Poll `predicate` until it returns something truthy (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")


# --- seeding: what a test cannot wait for ----------------------------------------------------------------

class SeededLonger:
    """A real download client reporting `extra_seconds` more seeding time and `extra_ratio` more ratio than it
    has (a test cannot seed for an hour, nor upload to a peer); everything else (look-up, removal, deletion of
    the files) is the daemon's. Records which torrents were looked up."""

    def __init__(self, real, extra_seconds: int, extra_ratio: float = 0.0):
        self.real, self.extra_seconds, self.extra_ratio, self.looked_up = real, extra_seconds, extra_ratio, []

    def get(self, info_hash: str):
        from dataclasses import replace

        self.looked_up.append(info_hash)
        status = self.real.get(info_hash)
        return status and replace(status, seeding_seconds=status.seeding_seconds + self.extra_seconds,
                                  ratio=status.ratio + self.extra_ratio)

    def remove(self, info_hash: str, delete_files: bool) -> None:
        self.real.remove(info_hash, delete_files)


def book_in_client(client, download_dir: Path, *, finished: bool, name: str = "Brandon Sanderson - Elantris"
                   ) -> tuple[Path, str]:
    """A two-file book added to a real download client and verified: (its folder, its info hash). Unfinished:
    its second file is missing, so the client has half of it on disk and waits for peers (there are none)."""
    import uuid

    from app.integrations.torrentfile import make_torrent, read_torrent
    from app.pipeline.download_state import DownloadState

    folder = download_dir / f"{name} {uuid.uuid4().hex[:8]}"
    folder.mkdir()
    for file in ("01.m4b", "02.m4b"):
        (folder / file).write_bytes(os.urandom(64 * 1024))
    torrent = make_torrent(folder, piece_length=16 * 1024)
    if not finished:
        (folder / "02.m4b").unlink()
    info_hash = read_torrent(torrent).info_hash
    client.add(torrent=torrent, category="readmeabook", tags=["test"], save_path=str(download_dir))

    def settled() -> bool:
        status = client.get(info_hash)
        if status is None:
            return False
        if finished:
            return status.state is DownloadState.COMPLETE
        return status.state is DownloadState.DOWNLOADING and 0 < status.progress < 1

    wait_for(settled, 20, message=f"the {'finished' if finished else 'half'} book to be verified")
    return folder, info_hash


def run_cleanup() -> tuple[dict, list[str]]:
    """Run cleanup_seeded_torrents once (in-process): its result and its events' messages."""
    from app.jobs.queues import queue_names_for_group
    from app.jobs.service import add_job
    from app.models import Job, JobEvent

    job_id = add_job("cleanup_seeded_torrents", {})
    drain(queue_names_for_group("maintenance"))
    events = [e.message for e in JobEvent.select().where(JobEvent.job == job_id).order_by(JobEvent.created_at)]
    return Job.get_by_id(job_id).result, events


def start_process(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """A Python subprocess of the repo (worker pool, scheduler, web server) with the test's env, output to log_path.

    A test that calls this is slow: mark it `@pytest.mark.slow` so the fast lane (`-m "not slow"`) leaves it out.
    """
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT) + os.pathsep + str(ROOT / "tests")}
    with open(log_path, "wb") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=full_env, stdout=handle,
                                stderr=subprocess.STDOUT)


def start_scheduler(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """scheduler.py (lease sweep, recovery, timers) as a subprocess that knows the test job types."""
    return start_process(["-c", "import jobtypes, runpy; runpy.run_path('scheduler.py', run_name='__main__')"],
                         env, log_path)


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def serve_app(flask_app) -> Iterator[str]:
    """The app on a free loopback port, served by threads of this process (for browsers and raw sockets)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, flask_app, threaded=True)
    # a short poll: shutdown() waits up to one interval
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def csrf_token(client, path: str = "/admin/logs") -> str:
    """The CSRF token of a logged-in test client's session, read from a page's forms."""
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


# --- browser tests ---------------------------------------------------------------------------------------

# Markup that must stay text wherever it is shown (titles, errors, metadata): browser tests check it never runs.
HOSTILE = '<script>window.__pwned = 1</script>"><img src=x onerror="window.__pwned = 2">'
SCREENSHOTS = Path(__file__).parent / "screenshots"  # git-ignored


def login(page, live_url: str) -> None:
    """Log the browser in as the admin; lands on the logs page."""
    page.goto(f"{live_url}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/admin/logs")


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

"""Failure paths of the job system with real faults in real processes: a worker paused past its lease
(SIGSTOP) is fenced out, a run lost with Redis is retried, a copy killed with SIGKILL is imported by the
retry, and every final failure of a pipeline job leaves its request `failed` with the reason.

Worker pools and scheduler.py run as subprocesses against the test Redis and PostgreSQL, with a short
lease (JOB_HEARTBEAT_TTL=5) so a fault is noticed within seconds.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from app.jobs.queues import queue_names_for_group
from app.jobs.service import add_job
from app.models import Audiobook, DownloadHistory, Job, Request

import jobtypes  # noqa: F401
from builders import event_messages
from helpers import drain, start_process, stop_process, wait_for

LEASE = 5


def _row(job_id) -> Job:
    return Job.get_by_id(job_id)


def _start_pool(env, tmp_path, group, size, name):
    return start_process(["tests/run_pool.py", group, "--size", str(size)], env, tmp_path / f"{name}.log")


def _start_scheduler(env, tmp_path):
    return start_process(["-c", "import jobtypes, runpy; runpy.run_path('scheduler.py', run_name='__main__')"],
                         env, tmp_path / "scheduler.log")


def _sleeping_pid(redis_conn, job_id, timeout=30) -> int:
    wait_for(lambda: redis_conn.get(f"test:sleeping:{job_id}"), timeout, message="job to start sleeping")
    return int(redis_conn.get(f"test:pid:{job_id}"))


@pytest.mark.slow
def test_a_worker_paused_past_its_lease_is_fenced_out(settings_env, redis_conn, use_settings, tmp_path):
    """SIGSTOP past the lease: the job re-runs elsewhere; after SIGCONT the first run writes nothing
    (no event, no chained job, no result) and the attempts stay within the limit."""
    use_settings(JOB_HEARTBEAT_TTL=LEASE)
    env = settings_env[1]
    pool = _start_pool(env, tmp_path, "testing", 2, "pool")
    scheduler = _start_scheduler(env, tmp_path)
    try:
        job_id = add_job("test_sleep_then_chain", {"seconds": 3 * LEASE})
        paused = _sleeping_pid(redis_conn, job_id)
        os.kill(paused, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            wait_for(lambda: _row(job_id).status == "completed", 90, interval=0.2, message="the successor run")
            recovered = time.monotonic() - stopped_at
        finally:
            os.kill(paused, signal.SIGCONT)
        # the paused run wakes, finishes its sleep and tries to log, chain and complete
        wait_for(lambda: redis_conn.get(f"test:woke:{job_id}") or _stale_run_done(tmp_path), 3 * LEASE + 15,
                 interval=0.3, message="the paused run to finish")
    finally:
        stop_process(scheduler)
        stop_process(pool)
    print(f"SIGSTOP past the lease: successor completed {recovered:.1f} s after the pause")
    row = _row(job_id)
    assert row.status == "completed" and row.result == {"run": 2}
    assert row.attempts == 2 <= row.max_attempts
    messages = event_messages(job_id)
    assert "run 2 finished" in messages
    assert "run 1 finished" not in messages  # the stale run's event was refused
    assert not any("no attempts left" in m for m in messages)
    chained = [j.payload["tag"] for j in Job.select().where(Job.type == "test_record")]
    assert chained == ["chained-by-run-2"]  # the stale run could not start the next step again


def _stale_run_done(tmp_path: Path) -> bool:
    """The pool log says the first run's result was discarded or its chain refused."""
    log = (tmp_path / "pool.log").read_text(errors="replace")
    return "lost its lease" in log


@pytest.mark.slow
def test_an_active_run_lost_with_redis_is_retried(settings_env, redis_conn, use_settings, tmp_path):
    """Redis loses everything (restart without persistence) and the worker dies with it: the row was
    `active`, which the lost-job pass never looked at. The lease in PostgreSQL expires and the run is
    retried."""
    use_settings(JOB_HEARTBEAT_TTL=LEASE)
    env = settings_env[1]
    pool = _start_pool(env, tmp_path, "testing", 1, "pool")
    scheduler = _start_scheduler(env, tmp_path)
    try:
        job_id = add_job("test_sleep", {"seconds": 120})
        worker = _sleeping_pid(redis_conn, job_id)
        redis_conn.flushdb()
        os.kill(worker, signal.SIGKILL)
        lost_at = time.monotonic()
        redis_conn.set(f"test:runs:{job_id}", 1)  # the test's own run counter went with the flush
        wait_for(lambda: _row(job_id).status == "completed", 90, interval=0.2, message="the retried run")
        recovered = time.monotonic() - lost_at
    finally:
        stop_process(scheduler)
        stop_process(pool)
    print(f"active run lost with Redis: completed again {recovered:.1f} s later")
    row = _row(job_id)
    assert row.attempts == 2 and row.result == {"run": 2}
    assert any("Run lost" in m for m in event_messages(job_id))


def _downloading_request(title="The Way of Kings", author="Brandon Sanderson") -> Request:
    book = Audiobook.create(title=title, author=author)
    return Request.create(audiobook=book, status="downloading")


def _organize_job(request: Request, download_path: Path) -> str:
    DownloadHistory.create(request=request, selected=True, download_status="completed",
                           download_path=str(download_path))
    return add_job("organize_files", {"requestId": str(request.id), "audiobookId": str(request.audiobook_id),
                                      "downloadPath": str(download_path)})


def _big_book(downloads: Path, megabytes: int) -> Path:
    book = downloads / "Brandon Sanderson - The Way of Kings"
    book.mkdir()
    chunk = os.urandom(1 << 20)
    with open(book / "book.m4b", "wb") as handle:
        for index in range(megabytes):
            handle.write(chunk[index % 7:] + chunk[:index % 7])
    return book


def _import_of_a_big_book(settings_env, use_settings, tmp_path, **settings):
    """A 400 MB book in DOWNLOAD_DIR, a `downloading` request, an organize_files pool and the scheduler."""
    downloads, media = tmp_path / "downloads", tmp_path / "media"
    downloads.mkdir()
    media.mkdir()
    use_settings(JOB_HEARTBEAT_TTL=LEASE, DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), **settings)
    env = settings_env[1]
    book = _big_book(downloads, 400)
    request = _downloading_request()
    return (media, book, request, _start_pool(env, tmp_path, "organize_files", 1, "pool"),
            _start_scheduler(env, tmp_path))


@pytest.mark.slow
def test_kill_9_mid_copy_then_the_retry_imports_and_removes_the_partial(settings_env, redis_conn, use_settings,
                                                                        tmp_path):
    media, book, request, pool, scheduler = _import_of_a_big_book(settings_env, use_settings, tmp_path)
    try:
        job_id = _organize_job(request, book)
        partial = wait_for(lambda: list(media.rglob(".rmab-partial-*")), 60, interval=0.002,
                           message="the copy to start")
        worker = int(wait_for(lambda: _row(job_id).status == "active" and _worker_pid(redis_conn), 10))
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        assert partial[0].exists()
        wait_for(lambda: Request.get_by_id(request.id).status == "downloaded", 120, interval=0.2,
                 message="the retried import")
        recovered = time.monotonic() - killed_at
    finally:
        stop_process(scheduler)
        stop_process(pool)
    print(f"kill -9 mid-copy: imported by the retry {recovered:.1f} s after the kill")
    target = media / "Brandon Sanderson" / "The Way of Kings"
    assert sorted(p.name for p in target.iterdir()) == ["book.m4b"]  # the partial is gone
    assert (target / "book.m4b").read_bytes() == (book / "book.m4b").read_bytes()
    row = _row(job_id)
    assert row.status == "completed" and row.attempts == 2


def _worker_pid(redis_conn) -> int | None:
    """The pid of the (only) RQ worker serving organize_files, from RQ's worker registry."""
    from rq import Worker

    workers = [w for w in Worker.all(connection=redis_conn) if w.get_current_job_id()]
    return workers[0].pid if workers else None


@pytest.mark.slow
def test_a_worker_killed_on_the_last_attempt_fails_the_request(settings_env, redis_conn, use_settings, tmp_path):
    media, book, request, pool, scheduler = _import_of_a_big_book(settings_env, use_settings, tmp_path,
                                                                  JOB_MAX_ATTEMPTS=1)
    try:
        job_id = _organize_job(request, book)
        wait_for(lambda: list(media.rglob(".rmab-partial-*")), 60, interval=0.002, message="the copy to start")
        os.kill(int(wait_for(lambda: _worker_pid(redis_conn), 10)), signal.SIGKILL)
        wait_for(lambda: Request.get_by_id(request.id).status == "failed", 90, interval=0.2,
                 message="the request to fail")
    finally:
        stop_process(scheduler)
        stop_process(pool)
    assert _row(job_id).status == "failed"
    reason = Request.get_by_id(request.id).error_message
    assert reason.startswith("organize_files failed:") and "died" in reason


def test_a_path_template_error_fails_the_request_at_once(settings, use_settings, redis_conn, tmp_path):
    downloads, media = tmp_path / "downloads", tmp_path / "media"
    (downloads / "book").mkdir(parents=True)
    media.mkdir()
    (downloads / "book" / "a.mp3").write_bytes(b"audio")
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media))
    request = _downloading_request(title="...", author="...")
    job_id = _organize_job(request, downloads / "book")
    drain(queue_names_for_group("organize_files"))
    request = Request.get_by_id(request.id)
    assert request.status == "failed"
    assert "path template" in request.error_message
    assert _row(job_id).status == "failed" and _row(job_id).attempts == 1


@pytest.mark.slow
def test_a_non_retryable_os_error_fails_the_request_only_after_the_last_attempt(settings, use_settings, redis_conn,
                                                                                tmp_path):
    """EISDIR (a folder where the file must go) is no reason for awaiting_import; the job's retries try
    again and only the last failure fails the request — before, the first one failed it and the
    retries were skipped as 'completed'."""
    downloads, media = tmp_path / "downloads", tmp_path / "media"
    (downloads / "book").mkdir(parents=True)
    (downloads / "book" / "a.mp3").write_bytes(b"audio")
    (media / "Brandon Sanderson" / "The Way of Kings" / "a.mp3").mkdir(parents=True)
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media), JOB_BACKOFF_SECONDS=1)
    request = _downloading_request()
    job_id = _organize_job(request, downloads / "book")
    drain(queue_names_for_group("organize_files"), until=lambda: _row(job_id).status in ("failed", "completed"))
    row = _row(job_id)
    assert row.status == "failed" and row.attempts == 3
    request = Request.get_by_id(request.id)
    assert request.status == "failed" and "Is a directory" in request.error_message


@pytest.mark.slow
def test_an_unexpected_exception_on_every_attempt_fails_the_request(settings, use_settings, redis_conn, tmp_path):
    """Any exception, on every attempt: the last failure fails the request with the reason (before, the
    retries found the request already `processing`, skipped, and the request stayed there)."""
    use_settings(JOB_BACKOFF_SECONDS=1, MEDIA_DIR=str(tmp_path))
    request = _downloading_request()
    job_id = add_job("organize_files", {"requestId": str(request.id), "downloadPath": str(tmp_path / "x"),
                                        "audiobookId": "00000000-0000-0000-0000-000000000000"})
    drain(queue_names_for_group("organize_files"), until=lambda: _row(job_id).status in ("failed", "completed"))
    assert _row(job_id).status == "failed" and _row(job_id).attempts == 3
    request = Request.get_by_id(request.id)
    assert request.status == "failed"
    assert request.error_message.startswith("organize_files failed: AudiobookDoesNotExist")


@pytest.mark.slow
def test_a_database_outage_at_the_start_of_a_run_spends_no_attempt(settings, redis_conn, use_settings):
    """PostgreSQL restarting when a run starts: the run comes back a few seconds later with all its
    attempts (before, a restart of a few seconds used up the job's retries and left its row waiting)."""
    from rq.job import Job as RQJob

    from app.db import bind_database
    from workers.worker import JobWorker

    from daemons import free_port
    from helpers import TEST_DATABASE_URL

    use_settings(JOB_MAX_ATTEMPTS=2, JOB_BACKOFF_SECONDS=1)
    job_id = add_job("noop", {})
    bind_database(f"postgresql://127.0.0.1:{free_port()}/unreachable")  # the server is away
    try:
        JobWorker(queue_names_for_group("maintenance"), connection=redis_conn).work(burst=True)
    finally:
        bind_database(TEST_DATABASE_URL)
    rq_job = RQJob.fetch(f"job-{job_id}", connection=redis_conn)
    assert rq_job.get_status() == "scheduled" and rq_job.retries_left == 1  # no attempt spent
    assert _row(job_id).status == "pending"
    drain(queue_names_for_group("maintenance"), until=lambda: _row(job_id).status in ("completed", "failed"))
    row = _row(job_id)
    assert row.status == "completed" and row.attempts == 1

"""RQ worker classes used by the pools.

JobWorker (default) runs jobs in its own process (RQ SimpleWorker: no fork per job, ~4x the
throughput and ~1/4 the start latency of forking). RQ's SimpleWorker only renews a job's
StartedJobRegistry entry once, with TTL job_timeout + 60 s, so a SIGKILLed worker would be noticed
only minutes later; JobWorker renews it from a heartbeat thread with a short TTL instead
(JOB_HEARTBEAT_TTL, default 30 s), so an abandoned job is detected within about 30-40 s.

ForkJobWorker (WORKER_CLASS=fork) keeps RQ's fork-per-job isolation and records a work-horse that
dies under a living worker, which RQ reports to no callback.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from rq import SimpleWorker, Worker

from app.config import bound_settings, get_settings
from app.jobs import fence, types
from app.jobs.callbacks import on_work_horse_killed
from app.jobs.dequeue import JobQueue
from app.jobs.queues import type_of_queue
from app.jobs.service import db_id_from_rq_id
from app.jobs.stopping import STOP_GRACE_SECONDS
from app.settings_store import refresh_settings

log = logging.getLogger(__name__)
# One line per finished job (and per failed attempt) at info; RQ's own per-job lines are debug
# (app/logging_setup.py QUIETED), and so is the mirror of the job's info events (app/jobs/logger.py).
job_log = logging.getLogger("workers.job")
_REASON_CHARS = 300


def attempt_number(retries_left: int | None, retry_intervals: list | None) -> int:
    """The attempt a run is, from RQ's retry bookkeeping as the run starts.

    Jobs are enqueued with Retry(max=attempts - 1, interval=[one wait per retry])
    (app.jobs.service.retry_policy); RQ takes one from retries_left per failed run, and a download poll
    (a Retry returned by the job) leaves both alone, so polls are not attempts."""
    if not retry_intervals:
        return 1
    return max(len(retry_intervals) - (retries_left or 0), 0) + 1


def failure_reason(exc_string: str) -> str:
    """The exception line of a traceback (`RuntimeError: boom`), or the whole text when it is one line."""
    lines = [line.strip() for line in (exc_string or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def end_status(*, failed: bool, retries_left: int | None, stopped: bool, result: Any) -> str:
    """completed, skipped (the runner found the job cancelled or finished), retrying, failed or cancelled."""
    if stopped:
        return "cancelled"
    if failed:
        return "retrying" if retries_left and retries_left > 0 else "failed"
    return "skipped" if isinstance(result, dict) and result.get("skipped") is True else "completed"


def _redacted(text: str) -> str:
    from app.redaction import redact_text

    return redact_text(text, get_settings().secret_values())


class JobEndLine:
    """Worker mixin: writes one line when a run ends (job, type, status, attempt, duration; the reason of a
    failure), and a debug line when a download poll comes back later (a poll is not the job's end)."""

    _run_started = 0.0
    _run_attempt = 1

    def execute_job(self, job: Any, queue: Any) -> None:
        # Before the run: a fork worker's horse inherits these, and the worker itself reports a killed horse.
        self._run_started = time.monotonic()
        self._run_attempt = attempt_number(job.retries_left, job.retry_intervals)
        super().execute_job(job, queue)  # type: ignore[misc]

    def handle_job_success(self, job: Any, queue: Any, started_job_registry: Any) -> None:
        super().handle_job_success(job, queue, started_job_registry)  # type: ignore[misc]
        self._end_line(job, end_status(failed=False, retries_left=None, stopped=False,
                                       result=getattr(job, "_result", None)))

    def handle_job_failure(self, job: Any, queue: Any, started_job_registry: Any = None, exc_string: str = "") -> None:
        # Read before RQ takes a retry off (the failure callback already set 0 for a permanent error).
        status = end_status(failed=True, retries_left=job.retries_left,
                            stopped=getattr(self, "_stopped_job_id", None) == job.id, result=None)
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry,  # type: ignore[misc]
                                   exc_string=exc_string)
        self._end_line(job, status, exc_string=exc_string)

    def handle_job_retry(self, job: Any, queue: Any, retry: Any, started_job_registry: Any, execution: Any) -> None:
        super().handle_job_retry(job, queue, retry, started_job_registry, execution)  # type: ignore[misc]
        if job_log.isEnabledFor(logging.DEBUG):
            job_type = type_of_queue(job.origin)
            job_log.debug("%s polls again in %s s", job_type, retry.intervals[0] if retry.intervals else 0,
                          extra={"job": db_id_from_rq_id(job.id) or job.id, "type": job_type})

    def _end_line(self, job: Any, status: str, exc_string: str | None = None) -> None:
        if not job_log.isEnabledFor(logging.INFO):  # LOG_LEVEL=warning: nothing to build (the benchmarks)
            return
        job_type = type_of_queue(job.origin)
        fields = {"job": db_id_from_rq_id(job.id) or job.id, "type": job_type, "status": status,
                  "attempt": self._run_attempt, "duration": round(time.monotonic() - self._run_started, 3)}
        if exc_string is not None:
            fields["error"] = _redacted(failure_reason(exc_string))[:_REASON_CHARS]
        job_log.info("%s %s", job_type, status, extra=fields)


class FewerRoundTrips:
    """Worker mixin that drops RQ's redundant Redis round trips (bench/throughput.py, tests/jobs/test_round_trips.py).

    - RQ beats the worker key (HSET + EXPIRE, two round trips) up to four times per job, three of them
      without a pipeline (before and after the dequeue, after the job). A bare beat is dropped when the
      last beat is under HEARTBEAT_COALESCE_SECONDS old and the key will outlive the longest blocking
      dequeue that can follow, with a margin (KEY_SLACK_SECONDS): the job's start beats with the job's
      heartbeat TTL (JOB_HEARTBEAT_TTL), which may be shorter than that, and then the beat is sent. A bare
      beat that is due goes as one pipelined round trip.
    - The suspension check (`rq suspend`) runs once a second instead of before every job: a suspension
      takes effect within a second.
    - When a job's execution ends RQ writes the job's last_heartbeat on its own, just before the job's
      hash is saved whole (finished, failed or retried); the value now travels with that save.
    - RQ sets the worker's state to idle after each job and again before the next dequeue; a state
      the worker already has is not written again.
    """

    HEARTBEAT_COALESCE_SECONDS = 1.0
    KEY_SLACK_SECONDS = 10.0
    SUSPENSION_CHECK_SECONDS = 1.0
    last_heartbeat: Any = None
    _key_expires_at = float("-inf")  # monotonic time the worker key expires, from the last beat sent
    _suspension_checked = float("-inf")

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        now = time.monotonic()
        if pipeline is None and timeout is None and self._can_skip_beat(now):
            return
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)  # type: ignore[misc]
        else:
            with self.connection.pipeline(transaction=False) as batch:  # type: ignore[attr-defined]
                super().heartbeat(timeout, pipeline=batch)  # type: ignore[misc]
                batch.execute()
        self._key_expires_at = now + (timeout or self.worker_ttl + 60)  # type: ignore[attr-defined]

    def _can_skip_beat(self, now: float) -> bool:
        last = self.last_heartbeat
        if last is None or (datetime.now(UTC) - last).total_seconds() >= self.HEARTBEAT_COALESCE_SECONDS:
            return False
        longest_wait = self.dequeue_timeout + self.KEY_SLACK_SECONDS  # type: ignore[attr-defined]
        return self._key_expires_at - now >= longest_wait

    def set_state(self, state: str, pipeline: Any = None) -> None:
        if pipeline is None and state == getattr(self, "_state", None):
            return
        super().set_state(state, pipeline=pipeline)  # type: ignore[misc]

    def check_for_suspension(self, burst: bool) -> None:
        now = time.monotonic()
        if now - self._suspension_checked < self.SUSPENSION_CHECK_SECONDS:
            return
        self._suspension_checked = now
        super().check_for_suspension(burst)  # type: ignore[misc]

    def handle_execution_ended(self, job: Any, queue: Any, heartbeat_ttl: int) -> None:
        job.ended_at = datetime.now(UTC)
        job.last_heartbeat = job.ended_at  # saved with the job's hash by the success/failure/retry handling


class SettingsPerJob:
    """Worker mixin: before each job, apply the settings an admin saved since (app/settings_store.py), and bind
    them for the whole run: a job keeps the settings it started with (a forked work-horse inherits them)."""

    def execute_job(self, job: Any, queue: Any) -> None:
        with bound_settings(refresh_settings(connection=self.connection)):  # type: ignore[attr-defined]
            super().execute_job(job, queue)  # type: ignore[misc]


def _worker_defaults(kwargs: dict[str, Any]) -> dict[str, Any]:
    settings = get_settings()
    kwargs.setdefault("worker_ttl", settings.worker_ttl)
    kwargs.setdefault("maintenance_interval", settings.worker_maintenance_interval)
    kwargs.setdefault("work_horse_killed_handler", on_work_horse_killed)
    kwargs.setdefault("queue_class", JobQueue)
    return kwargs


class JobWorker(SettingsPerJob, FewerRoundTrips, JobEndLine, SimpleWorker):
    """The default worker: runs jobs in its own process (no fork per job).

    Stop (app/jobs/stopping.py): RQ's stop-job command arrives on the worker's command thread, which marks the
    run stopped (it raises fence.RunStopped at its next checkpoint) and, under the supervisor, arms
    `kill_deadline`: a number in memory shared with the supervisor, which kills this process once the
    deadline passes with the job still running (a run stuck in a sleep or a C call never reaches a checkpoint).
    """

    def __init__(self, queues: Any, *args: Any, kill_deadline: Any = None, **kwargs: Any):
        super().__init__(queues, *args, **_worker_defaults(kwargs))
        self.job_heartbeat_ttl = get_settings().job_heartbeat_ttl
        self.kill_deadline = kill_deadline  # multiprocessing RawValue('d') of the supervisor's slot, or None
        self._running_job: Any = None
        self._stop_lock = threading.Lock()
        self._lapsing_job: Any = None   # the job whose lease is left to lapse (warned once)
        self._heartbeat_wakeup = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None

    def handle_payload(self, message: Any) -> None:
        from rq.command import parse_payload

        payload = parse_payload(message)
        if payload.get("command") != "stop-job":
            super().handle_payload(message)
            return
        self.stop_running_job(str(payload.get("job_id") or ""))

    def stop_running_job(self, rq_job_id: str) -> bool:
        """Stop the run of `rq_job_id` if this worker runs it: flag it for its next checkpoint and arm the kill
        deadline. False when this worker is not running it (the command is ignored)."""
        with self._stop_lock:
            job = self._running_job
            db_id = db_id_from_rq_id(rq_job_id)
            if job is None or job.id != rq_job_id or db_id is None or not fence.request_stop(db_id):
                log.info("worker %s: not running job %s; stop ignored", self.name, rq_job_id)
                return False
            self._stopped_job_id = rq_job_id  # RQ then records the run as stopped, with no retry
            if self.kill_deadline is not None:
                self.kill_deadline.value = time.monotonic() + STOP_GRACE_SECONDS
        log.warning("worker %s: job %s stopped by an admin; it ends at its next checkpoint, or this worker is "
                    "restarted in %.0f s", self.name, db_id, STOP_GRACE_SECONDS)
        return True

    def get_heartbeat_ttl(self, job: Any) -> int:
        return self.job_heartbeat_ttl

    def execute_job(self, job: Any, queue: Any) -> None:
        if self._heartbeat_thread is None or not self._heartbeat_thread.is_alive():
            # One thread for the worker's life (a thread per job costs more than a no-op job).
            self._heartbeat_thread = threading.Thread(target=self._beat_forever, daemon=True,
                                                      name=f"heartbeat-{self.name}")
            self._heartbeat_thread.start()
        self._running_job = job
        try:
            super().execute_job(job, queue)
        finally:
            with self._stop_lock:
                self._running_job = None
                if self.kill_deadline is not None:
                    self.kill_deadline.value = 0.0  # the job ended: nothing for the supervisor to kill
            fence.end()  # whatever happened in RQ's bookkeeping, this run's lease is no longer renewed

    def _beat_forever(self) -> None:
        interval = max(self.job_heartbeat_ttl / 3, 1)
        while True:
            self._heartbeat_wakeup.wait(interval)
            self.beat_once()

    def beat_once(self) -> bool:
        """Renew RQ's lease of the running job, unless its lease in the database could not be renewed for
        a whole lease period (fence.lease_unconfirmed): then RQ's lapses too and the job is retried by
        another worker. Whether a beat was sent."""
        job = self._running_job
        if job is None or self.execution is None:
            return False
        if fence.lease_unconfirmed():
            if self._lapsing_job is not job:
                self._lapsing_job = job
                log.warning("job %s: its lease could not be renewed in the database for %d s; letting RQ's "
                            "lapse too, so that another worker runs it", job.id, self.job_heartbeat_ttl)
            return False
        try:
            self.maintain_heartbeats(job)
        except Exception:  # a missed beat is retried; the job itself must not be disturbed
            log.exception("heartbeat for job %s failed", job.id)
            return False
        return True


class ForkJobWorker(SettingsPerJob, FewerRoundTrips, JobEndLine, Worker):
    def __init__(self, queues: Any, *args: Any, kill_deadline: Any = None, **kwargs: Any):
        # kill_deadline is not used: RQ's stop-job kills the work-horse at once
        kwargs.setdefault("job_monitoring_interval", 10)
        super().__init__(queues, *args, **_worker_defaults(kwargs))


def worker_class(group: str | None = None) -> type[JobWorker] | type[ForkJobWorker]:
    """A group declared `forked` (app/jobs/types.py: send_notification, whose Apprise plugins a horse gives
    back when it exits) always runs each job in a forked work-horse, whatever WORKER_CLASS says."""
    declared = types.worker_group(group) if group else None
    if get_settings().worker_class == "fork" or (declared is not None and declared.forked):
        return ForkJobWorker
    return JobWorker

"""The scheduler process's loop (started by scheduler.py, the Procfile's `scheduler`): SchedulerProcess.

"Scheduler" names only this process. The two libraries it drives have their own names here: the
ScheduleTimer (rq-scheduler's `Scheduler`, holding each enabled schedule's next tick) and the
DelayedJobPromoter (RQ's own `RQScheduler`, which moves due delayed jobs onto their queues).

Every second it fires due schedules (the timer's entries kept in step with scheduled_jobs every
2 s; see app/schedules/timer.py), and moves due delayed jobs, retries and download polls onto their
queues (the DelayedJobPromoter, for every queue: workers run no RQ scheduler, so keep one scheduler
process running wherever workers run). Every quarter second it queues the poll batches that due download
polls need (app/jobs/poll_batches.py). Every 5 s it sweeps abandoned jobs (worker killed mid-job → stuck →
retried) and runs whose lease in the database expired; every 10 s it re-enqueues jobs Redis lost and adds
waiting polls Redis lost back to the due set;
every minute the reconciler repairs requests left in an in-progress status with no job, and the
integrations (Prowlarr, download client, Plex) are checked in a background thread (their results feed
/admin/system and the health banner; app/integrations/health.py), and an integration down or back up, or
a schedule turned late, queues a notification (app/notifications/watch.py). Each duty has its own failure
boundary (SchedulerProcess.tick): one failing never skips the others.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

from rq import Queue, SimpleWorker
from rq.scheduler import RQScheduler

from app.audiobook_requests.reconciler import reconcile_requests
from app.config import get_settings
from app.integrations.health import CHECK_INTERVAL_SECONDS, run_periodic_checks
from app.jobs import poll_batches, types
from app.jobs.queues import queue_names_for_type
from app.jobs.recovery import requeue_lost_jobs, sweep_abandoned_jobs, sweep_expired_leases
from app.migrations import schema_is_current
from app.notifications.watch import announce_integrations, announce_late_schedules
from app.redis_connection import get_redis
from app.reports import system_health
from app.schedules.defaults import ensure_default_schedules
from app.schedules.service import SCHEDULER_HEARTBEAT_KEY
from app.schedules.timer import SCHEDULES_QUEUE, sync_timer
from app.settings_store import refresh_settings

log = logging.getLogger("scheduler")
TICK_SECONDS = 1.0
SYNC_EVERY_TICKS = 2
SWEEP_EVERY_TICKS = 5
LOST_JOBS_EVERY_TICKS = 10
RECONCILE_EVERY_TICKS = 60
INTEGRATIONS_EVERY_TICKS = int(CHECK_INTERVAL_SECONDS / TICK_SECONDS)
LATE_SCHEDULES_EVERY_TICKS = 60
POLL_PROMOTE_SECONDS = 0.25  # poll batches are queued this often (also between ticks)


class DelayedJobPromoter(RQScheduler):
    """What moves due delayed jobs, retries and polls onto their queues: RQ's own RQScheduler, with 10 s
    queue locks instead of interval + 60 s: this process refreshes its locks every second, so a scheduler
    process restarted after a kill (whose dead predecessor's locks cannot be released) promotes delayed
    jobs, retries and polls again within 10 s, not 61 s."""

    LOCK_SECONDS = 10

    def acquire_locks(self, auto_start: bool = False) -> set:
        interval, self.interval = self.interval, self.LOCK_SECONDS - 60  # RQ's lock lifetime is interval + 60
        try:
            return super().acquire_locks(auto_start)
        finally:
            self.interval = interval


class ScheduleFiringWorker(SimpleWorker):
    """RQ's SimpleWorker, run in burst inside this process to fire due schedules, without RQ's own SIGTERM
    and SIGINT handlers: RQ's would replace this process's (SchedulerProcess._stop) for good once one
    schedule had fired, so a later SIGTERM raised StopRequested out of the loop and the process exited 1, not 0 after
    its current tick."""

    def _install_signal_handlers(self) -> None:
        pass


class SchedulerProcess:
    """The scheduler process (scheduler.py): its loop, its duties and their failure boundaries."""

    def __init__(self, interval: float = TICK_SECONDS):
        self.interval = interval
        self.stopping = False
        self.ticks = 0
        self.connection = get_redis(get_settings().redis_url)
        queues = [name for t in types.all_types() for name in queue_names_for_type(t.name)]
        self.delayed_jobs = DelayedJobPromoter(queues, connection=self.connection)
        from rq_scheduler import Scheduler as ScheduleTimer  # rq-scheduler: holds each schedule's next tick

        self.timer = ScheduleTimer(queue_name=SCHEDULES_QUEUE, connection=self.connection, interval=1)
        self.integration_checks: threading.Thread | None = None

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def wait_for_schema(self) -> None:
        while not self.stopping:
            try:
                if schema_is_current():
                    return
                log.warning("database schema is not current; run `flask --app app init-db` (retrying in 5 s)")
            except Exception as exc:
                log.warning("database not reachable (%s); retrying in 5 s", type(exc).__name__)
            time.sleep(5)

    def promote_due_jobs(self) -> None:
        """Enqueue due delayed jobs on the queues whose RQ scheduler lock this process holds (or wins)."""
        promoter = self.delayed_jobs
        promoter.acquire_locks()  # refreshes ours, takes over locks a dead worker's RQ scheduler let expire
        if promoter.acquired_locks:
            promoter.prepare_registries(promoter.acquired_locks)
            promoter.enqueue_scheduled_jobs()

    def promote_due_polls(self) -> None:
        """Queue the poll batches that due download polls need (app/jobs/poll_batches.py); several times a
        tick (POLL_PROMOTE_SECONDS), since a poll is due every MONITOR_POLL_SECONDS for each download."""
        if poll_batches.enabled():
            poll_batches.promote(self.connection)

    def repair_lost_polls(self) -> None:
        if poll_batches.enabled():
            lost = poll_batches.repair_lost(self.connection)
            if lost:
                log.warning("added %d waiting poll(s) missing from Redis to the due set again", len(lost))

    def fire_due_schedules(self) -> None:
        """rq-scheduler moves due entries to the schedules queue (one process at a time, its global lock);
        this process then runs them at once, so ticks never wait for a worker pool."""
        if self.ticks % SYNC_EVERY_TICKS == 0:
            sync_timer(self.timer)
        if self.timer.acquire_lock():
            try:
                for _ in self.timer.enqueue_jobs():
                    pass
            finally:
                self.timer.remove_lock()
        queue = Queue(SCHEDULES_QUEUE, connection=self.connection)
        if queue.count:
            ScheduleFiringWorker([queue], connection=self.connection).work(burst=True, logging_level="WARNING")

    def sweep(self) -> None:
        sweep_abandoned_jobs(self.connection)
        lost = sweep_expired_leases(self.connection)
        if lost:
            log.warning("declared %d run(s) dead whose lease expired outside RQ's view: %s", len(lost), ", ".join(lost))

    def requeue_lost(self) -> None:
        requeued = requeue_lost_jobs(self.connection)
        if requeued:
            log.warning("re-enqueued %d job(s) missing from Redis", len(requeued))

    def reconcile(self) -> None:
        repaired = reconcile_requests()
        if repaired:
            log.warning("reconciler repaired %d stranded request(s)", len(repaired))

    def check_integrations(self) -> None:
        """Start the integration checks in a background thread unless the previous ones still run: a check
        may wait its timeout (5 s a call), and the tick's other duties must never wait for it."""
        if self.integration_checks is not None and self.integration_checks.is_alive():
            return
        self.integration_checks = threading.Thread(target=self.run_integration_checks, name="integration-checks",
                                                   daemon=True)
        self.integration_checks.start()

    def run_integration_checks(self) -> None:
        """One round (synchronous; tests call it directly). Its results are shown, not logged: a down
        service is reported by the jobs that need it."""
        try:
            results = run_periodic_checks(get_settings(), self.connection)
            announce_integrations(self.connection, results)  # down and back up: one notification each
        except Exception as exc:  # the thread's own failure boundary: log it, the next run tries again
            log.warning("scheduler: integration checks failed (%s: %s); continuing", type(exc).__name__, exc)
        try:  # the system's own checks (free space, Redis persistence, workers): their own failure boundary
            system_health.check_and_store(get_settings(), self.connection)
        except Exception as exc:
            log.warning("scheduler: system checks failed (%s: %s); continuing", type(exc).__name__, exc)

    def watch_schedules(self) -> None:
        """A schedule that turned late queues one notification (app/notifications/watch.py)."""
        announce_late_schedules(self.connection)

    def tick(self) -> None:
        """One pass; each duty has its own failure boundary, so one failing (Redis or PostgreSQL
        briefly away) never skips the others."""
        duties: list[Callable[[], object]] = [self.heartbeat, refresh_settings, self.fire_due_schedules,
                                              self.promote_due_jobs, self.promote_due_polls]
        if self.ticks % SWEEP_EVERY_TICKS == 0:
            duties.append(self.sweep)
        if self.ticks % LOST_JOBS_EVERY_TICKS == 0:
            duties.extend((self.requeue_lost, self.repair_lost_polls))
        if self.ticks % RECONCILE_EVERY_TICKS == RECONCILE_EVERY_TICKS - 1:
            duties.append(self.reconcile)
        if self.ticks % LATE_SCHEDULES_EVERY_TICKS == LATE_SCHEDULES_EVERY_TICKS // 2:
            duties.append(self.watch_schedules)
        if self.ticks % INTEGRATIONS_EVERY_TICKS == 0:  # also at start: the banner knows within seconds
            duties.append(self.check_integrations)
        for duty in duties:
            try:
                duty()
            except Exception as exc:
                log.warning("scheduler: %s failed (%s: %s); continuing", duty.__name__, type(exc).__name__, exc)
                log.debug("scheduler duty failure", exc_info=True)
        self.ticks += 1

    def _between_ticks(self) -> None:
        try:
            self.promote_due_polls()
        except Exception as exc:
            log.debug("scheduler: promote_due_polls failed (%s); the next tick retries", type(exc).__name__)

    def heartbeat(self) -> None:
        self.connection.set(SCHEDULER_HEARTBEAT_KEY, repr(time.time()), ex=15)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.wait_for_schema()
        if self.stopping:
            return 0
        created = ensure_default_schedules(get_settings())
        if created:
            log.info("created default schedules: %s", ", ".join(created))
        log.info("scheduler started")
        while not self.stopping:
            started = time.monotonic()
            self.tick()
            remaining = self.interval - (time.monotonic() - started)
            while remaining > 0 and not self.stopping:
                time.sleep(min(remaining, POLL_PROMOTE_SECONDS))
                remaining -= POLL_PROMOTE_SECONDS
                self._between_ticks()
        self.delayed_jobs.release_locks()
        log.info("scheduler stopped")
        return 0

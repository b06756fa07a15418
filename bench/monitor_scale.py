"""monitor_download at scale: N concurrent downloads on a fake client, the 5 configured monitor workers.

Each download polls every MONITOR_POLL_SECONDS (10 s) and keeps moving (no back-off); all N start within the first
10 s. Every poll, the first included (added as download_torrent adds it: add_job's `poll_batched`), is polled by
poll batches (app/jobs/poll_batches.py, workers/poll_batch.py), queued by the same promoter the scheduler process
runs (every 0.25 s, here in the bench's main process). Poll lag = when a poll starts (its batch, or its own run)
minus when it was due (a batch may start a poll up to 0.25 s early: negative). Busy share = time inside batches and
processors / (workers × measured time). Client calls per tick = calls the fake client answered (one shared snapshot,
or a look-up of one torrent) per 10 s of the run. Baseline, in the same run: bare RQ jobs that re-schedule
themselves the same way (returning rq.Retry every 10 s) on the same number of rq.SimpleWorker processes, doing
nothing else. Both paths first run until every download (or bare job) was polled once (the warm-up: N first polls at
once are a burst that happens once per download, hours apart in real use), then measure `--seconds`; `--cold`
measures from the start instead, the burst included, and says when every first poll was done (seconds from the
workers' start).

    python bench/monitor_scale.py [--sizes 1000 2000 10000] [--seconds 40] [--cold]
    python bench/monitor_scale.py --quick   # 50 downloads, 1 s polls, 6 s: exits 1 when the bench is broken

Scratch database and Redis db: BENCH_DATABASE_URL, BENCH_REDIS_URL (bench/common.py).
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import sys
import time

from common import BENCH_DATABASE_URL, percentile, quiet_logs, reset, setup

FIGURES = ("full path: polls", "lag p50", "client calls/10 s", "bare RQ: polls")  # what --quick must print
WORKERS = 5
INTERVAL = int(os.environ.get("BENCH_MONITOR_INTERVAL", "10"))  # the workers import this module by name


CALLS = "bench:client_calls"
FIRST_RUNS = "bench:first_runs"  # bare jobs that ran once (the warm-up's end)
WARM_UP_LIMIT = 600.0


class MovingClient:
    """Every torrent moves: progress grows with time, never completes within the run. The N torrents of the run
    are the category's; each call is counted in Redis (the workers are processes)."""

    torrents = 0

    def _count(self) -> None:
        from app.jobs.queues import get_redis

        get_redis().incr(CALLS)

    def _status(self, info_hash):
        from app.integrations.torrent import TorrentStatus
        from app.pipeline.download_state import DownloadState

        elapsed = time.time() - START
        size = 700 * 2**20
        progress = min(0.99, 0.001 + elapsed / 3600)
        return TorrentStatus(info_hash, "book", DownloadState.DOWNLOADING, "downloading", progress,
                             int(size * progress), size, 500_000, 3600, "/downloads/book", 0, "")

    def get(self, info_hash):
        self._count()
        return self._status(info_hash)

    def snapshot(self, category, info_hashes):
        self._count()
        return {f"{i:040x}": self._status(f"{i:040x}") for i in range(MovingClient.torrents)}

    def add(self, **kwargs):
        pass

    def remove(self, info_hash, delete_files):
        pass

    def version(self):
        return "moving 1.0"


START = time.time()


def _measuring(processor):
    def wrapped(payload):
        from app.jobs.queues import get_redis

        started = time.time()
        try:
            return processor(payload)
        finally:
            due = payload.get("pollDueAt")
            pipe = get_redis().pipeline()
            if due and "stallCount" in payload:  # a first poll handed on by its batch: see _observe_batch
                pipe.rpush("bench:lag", repr(started - due))
            pipe.rpush("bench:busy", repr(time.time() - started))
            pipe.execute()
    return wrapped


def bare_poll():
    """Baseline: a job that records its lag and asks RQ to run it again in INTERVAL s."""
    from rq import Retry, get_current_job

    job = get_current_job()
    started = time.time()
    due = job.meta.get("due")
    if due:
        job.connection.rpush("bench:lag", repr(started - due))
    else:
        job.connection.incr(FIRST_RUNS)
    job.meta["due"] = time.time() + INTERVAL
    job.save_meta()
    job.connection.rpush("bench:busy", repr(time.time() - started))
    return Retry(max=10**9, interval=INTERVAL)


def _observe_batch(lags: list[float], seconds: float, first: list[float]) -> None:
    """The poll batch's probe (workers/poll_batch.py observe): each poll's lag and the batch's time; the first polls'
    lags apart (their due times date from the set-up; bare RQ's first runs record none)."""
    from app.jobs.queues import get_redis

    pipe = get_redis().pipeline()
    if lags:
        pipe.rpush("bench:lag", *(repr(lag) for lag in lags))
    if first:
        pipe.rpush("bench:first_lag", *(repr(lag) for lag in first))
    pipe.rpush("bench:busy", repr(seconds))
    pipe.execute()


def _run_workers(target, seconds: float, meanwhile=None, warm=None, cold: bool = False) -> float:
    """Run WORKERS processes of `target`; with `warm`, first until warm() says every download was polled once
    (the warm-up: then the lags, busy times and client calls so far are dropped), then `seconds` measured.
    Returns the warm-up's duration; `cold`: nothing is dropped (measured from the start), and the duration is
    when warm() first said so within the run (inf: not within it)."""
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=target) for _ in range(WORKERS)]  # not daemonic: RQ forks its scheduler
    for process in processes:
        process.start()
    started = time.monotonic()
    warm_up = 0.0
    if warm is not None and not cold:
        checked = 0.0
        while time.monotonic() - started < WARM_UP_LIMIT:
            if meanwhile is not None:
                meanwhile()
            if time.monotonic() - checked >= 1:
                checked = time.monotonic()
                if warm():
                    break
            time.sleep(0.25)
        warm_up = time.monotonic() - started
        from app.jobs.queues import get_redis

        get_redis().delete("bench:lag", "bench:busy", CALLS)
    deadline = time.monotonic() + seconds
    checked, first_polls = 0.0, math.inf
    while time.monotonic() < deadline:
        if meanwhile is not None:
            meanwhile()
        if cold and warm is not None and first_polls == math.inf and time.monotonic() - checked >= 1:
            checked = time.monotonic()
            if warm():
                first_polls = checked - started
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(15)
        if process.is_alive():
            process.kill()
            process.join(5)
    return first_polls if cold else warm_up


def _collect(warmup_cut: int) -> tuple[list[float], float, int]:
    from app.jobs.queues import get_redis

    connection = get_redis()
    lags = [float(x) for x in connection.lrange("bench:lag", 0, -1)][warmup_cut:]
    busy = sum(float(x) for x in connection.lrange("bench:busy", 0, -1))
    return lags, busy, int(connection.get(CALLS) or 0)


def run_full(n: int, seconds: float, warm: bool) -> tuple[list[float], float, int, float]:
    from app.audiobook_requests.state import RequestStatus
    from app.config import get_settings
    from app.db import bind_database
    from app.integrations import torrent as torrent_module
    from app.jobs import poll_batches
    from app.jobs.queues import get_redis, queue_names_for_group
    from app.jobs.service import add_job
    from app.models import Audiobook, DownloadHistory, Job, Request
    from workers import poll_batch, processors
    from workers.processors.monitor_download import process_monitor
    from workers.worker import JobWorker

    reset()
    MovingClient.torrents = n
    torrent_module.set_client_factory(lambda kind: MovingClient())
    processors.replace("monitor_download", _measuring(process_monitor))
    poll_batch.observe = _observe_batch
    # one book per request: a book has at most one active request (migration 12)
    for i in range(n):
        book = Audiobook.create(title=f"Bench {i}", author="Bench")
        request = Request.create(audiobook=book, status=RequestStatus.DOWNLOADING.value)
        history = DownloadHistory.create(request=request, download_client="qbittorrent",
                                         download_client_id=f"{i:040x}", download_status="downloading", selected=True)
        add_job("monitor_download", {"requestId": str(request.id), "downloadHistoryId": str(history.id),
                                     "downloadClientId": f"{i:040x}", "downloadClient": "qbittorrent"},
                delay=random.uniform(1, INTERVAL), poll_batched=True)  # as download_torrent adds it

    def work():
        bind_database(BENCH_DATABASE_URL, synchronous_commit=get_settings().worker_synchronous_commit)
        JobWorker(queue_names_for_group("monitor_download"), connection=get_redis()).work(with_scheduler=True)

    connection = get_redis()
    warm_up = _run_workers(work, seconds, meanwhile=lambda: poll_batches.promote(connection),  # as scheduler.py
                           warm=lambda: Job.select().where(Job.polls >= 1).count() >= n, cold=not warm)
    return (*_collect(warmup_cut=0), warm_up)


def run_bare(n: int, seconds: float, warm: bool) -> tuple[list[float], float, int, float]:
    from rq import Queue, SimpleWorker

    from app.jobs.queues import get_redis

    reset()
    queue = Queue("bare_monitor", connection=get_redis())
    from datetime import timedelta

    for _ in range(n):
        queue.enqueue_in(timedelta(seconds=random.uniform(1, INTERVAL)), "bench.monitor_scale.bare_poll",
                         result_ttl=0)

    def work():
        SimpleWorker(["bare_monitor"], connection=get_redis()).work(with_scheduler=True)

    connection = get_redis()
    warm_up = _run_workers(work, seconds, warm=lambda: int(connection.get(FIRST_RUNS) or 0) >= n, cold=not warm)
    return (*_collect(warmup_cut=0), warm_up)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 10000])
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--cold", action="store_true",
                        help="measure from the start, the first polls included (no warm-up)")
    parser.add_argument("--quick", action="store_true",
                        help="50 downloads polled every second for 6 s; exit 1 unless both paths polled again")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.seconds = [50], 6.0
        os.environ["BENCH_MONITOR_INTERVAL"] = "1"
        global INTERVAL
        INTERVAL = 1
    setup(MONITOR_POLL_SECONDS=str(INTERVAL))
    quiet_logs()
    from app.jobs.queues import get_redis
    print(f"{WORKERS} workers, poll every {INTERVAL} s, {args.seconds:.0f} s measured per run"
          f"{' from the start' if args.cold else ' after a warm-up in which every download was polled once'}; "
          f"lag in seconds; load average {os.getloadavg()[0]:.2f}")
    broken = []
    for n in args.sizes:
        bare_lags, bare_busy, _, bare_warm = run_bare(n, args.seconds, not args.cold)
        lags, busy, calls, warm = run_full(n, args.seconds, not args.cold)
        first = [float(x) for x in get_redis().lrange("bench:first_lag", 0, -1)]
        share = busy / (WORKERS * args.seconds)
        bare_share = bare_busy / (WORKERS * args.seconds)
        per_tick = calls / (args.seconds / 10)
        print(f"N={n:5d}  full path: polls {len(lags):6d}  lag p50 {_pct(lags, 50)}  p95 {_pct(lags, 95)}  "
              f"busy {share:5.1%}  client calls/10 s {per_tick:5.2f}   |   bare RQ: "
              f"polls {len(bare_lags):6d}  lag p50 {_pct(bare_lags, 50)}  p95 {_pct(bare_lags, 95)}  "
              f"busy {bare_share:5.1%}" + (f"   (every first poll done at {_at(warm)} / bare {_at(bare_warm)}; "
                                           f"first polls in batches {len(first)}, lag p50 {_pct(first, 50)} "
                                           f"p95 {_pct(first, 95)})"
                                           if args.cold else f"   (warm-up {warm:.0f} s / bare {bare_warm:.0f} s)"),
              flush=True)
        if not lags or not bare_lags or not calls:
            broken.append(n)
    if broken:
        print(f"broken: no second poll (or no client call) at N={broken}", file=sys.stderr)
        sys.exit(1)


def _at(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds != math.inf else "not within the run"


def _pct(lags: list[float], pct: float) -> str:
    """A percentile of the lags, or `none` when no download was polled a second time within the run (the
    workers did not get through the first polls: the lag is at least the rest of the run)."""
    return f"{percentile(lags, pct):6.2f}" if lags else "  none"


if __name__ == "__main__":
    main()

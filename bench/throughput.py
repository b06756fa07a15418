"""Throughput of no-op jobs through the full path vs bare RQ, same worker class and process count.

Full path: add_job (jobs row + enqueue) → JobWorker → runner marks the row active → processor
logs two events → on_success callback writes completed + trims Redis.
Baseline: queue.enqueue of a no-op function → rq.SimpleWorker (the class JobWorker extends).
Both runs alternate in the same process, repeated, medians reported.

    python bench/throughput.py [--jobs 2000] [--workers 2] [--rounds 3] [--sync-commit] [--quick]
"""
from __future__ import annotations

import argparse
import time

from common import BENCH_DATABASE_URL, median, parse_args, quiet_logs, require_figures, reset, run_workers, setup

# what the output must hold (tests/bench/test_bench_quick.py checks it)
FIGURES = ("processing  bare RQ", "end to end  bare RQ", "full path", "ratio")


def bare_round(jobs: int, workers: int) -> tuple[float, float]:
    from rq import Queue, SimpleWorker
    from rq.registry import FinishedJobRegistry

    from app.jobs.queues import get_redis

    queue = Queue("bare", connection=get_redis())
    started = time.perf_counter()
    for _ in range(jobs):
        queue.enqueue("bench.tasks.bare_noop")
    enqueue_seconds = time.perf_counter() - started

    def work():
        SimpleWorker(["bare"], connection=get_redis()).work(burst=True)

    seconds = run_workers(work, workers)
    done = FinishedJobRegistry(queue=queue).count
    if done != jobs:
        raise SystemExit(f"bare RQ: only {done}/{jobs} jobs finished")
    return enqueue_seconds, seconds


def full_round(jobs: int, worker_count: int) -> tuple[float, float]:
    import workers.processors  # noqa: F401
    from app.jobs.queues import get_redis, queue_names_for_group
    from app.jobs.service import add_job
    from app.models import Job
    from workers.worker import JobWorker

    started = time.perf_counter()
    for _ in range(jobs):
        add_job("noop", {})
    enqueue_seconds = time.perf_counter() - started

    def work():
        # as workers/pool.py does: the worker's bookkeeping connection per WORKER_SYNCHRONOUS_COMMIT
        from app.config import get_settings
        from app.db import bind_database

        bind_database(BENCH_DATABASE_URL, synchronous_commit=get_settings().worker_synchronous_commit)
        JobWorker(queue_names_for_group("maintenance"), connection=get_redis()).work(burst=True)

    seconds = run_workers(work, worker_count)
    done = Job.select().where(Job.status == "completed").count()
    if done != jobs:
        raise SystemExit(f"only {done}/{jobs} jobs completed")
    return enqueue_seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sync-commit", action="store_true",
                        help="workers commit synchronously (WORKER_SYNCHRONOUS_COMMIT=true)")
    args = parse_args(parser, {"jobs": 100, "rounds": 1})
    setup(WORKER_SYNCHRONOUS_COMMIT=str(args.sync_commit).lower())
    quiet_logs()
    bare_process, full_process, bare_total, full_total = [], [], [], []
    for _ in range(args.rounds):
        for runner, process, total in ((bare_round, bare_process, bare_total),
                                       (full_round, full_process, full_total)):
            reset()
            enqueue_seconds, process_seconds = runner(args.jobs, args.workers)
            process.append(args.jobs / process_seconds)
            total.append(args.jobs / (enqueue_seconds + process_seconds))
    print(f"jobs={args.jobs} workers={args.workers} rounds={args.rounds} sync_commit={args.sync_commit} (medians)")
    print(f"processing  bare RQ {median(bare_process):7.1f} jobs/s   full path {median(full_process):7.1f} jobs/s"
          f"   ratio {median(full_process) / median(bare_process):.2f}")
    print(f"end to end  bare RQ {median(bare_total):7.1f} jobs/s   full path {median(full_total):7.1f} jobs/s"
          f"   ratio {median(full_total) / median(bare_total):.2f}")
    for name, bare, full in (("processing", bare_process, full_process), ("end to end", bare_total, full_total)):
        print(f"{name} by round (bare / full, ratio): "
              + "   ".join(f"{b:.1f} / {f:.1f}, {f / b:.2f}" for b, f in zip(bare, full, strict=True)))
    require_figures({"processing, bare RQ": median(bare_process), "processing, full path": median(full_process),
                     "end to end, bare RQ": median(bare_total), "end to end, full path": median(full_total)})


if __name__ == "__main__":
    main()

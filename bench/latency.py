"""Enqueue-to-start latency with idle workers: full path vs bare RQ, in the same run.

Jobs are enqueued one at a time, `--gap` seconds apart, to one idle worker process (JobWorker for
the full path, rq.SimpleWorker for the baseline). Latency = the processor's first line minus the
moment before add_job / queue.enqueue was called.

    python bench/latency.py [--jobs 300] [--gap 0.02] [--quick]
"""
from __future__ import annotations

import argparse
import multiprocessing
import time

from common import median, parse_args, percentile, quiet_logs, require_figures, reset, setup

# what the output must hold (tests/bench/test_bench_quick.py checks it)
FIGURES = ("bare RQ    p50", "full path  p50", "ratio full/bare")


def _stamp_processor(payload):
    from app.jobs.queues import get_redis

    get_redis().rpush("bench:started", repr(time.time()))
    return None


def measure(enqueue_one, worker_target, jobs: int, gap: float) -> list[float]:
    from app.jobs.queues import get_redis

    connection = get_redis()
    process = multiprocessing.get_context("fork").Process(target=worker_target, daemon=True)
    process.start()
    time.sleep(1.0)  # let the worker reach its idle blocking dequeue
    sent = []
    for _ in range(jobs):
        sent.append(time.time())
        enqueue_one()
        time.sleep(gap)
    deadline = time.time() + 30
    while connection.llen("bench:started") < jobs and time.time() < deadline:
        time.sleep(0.05)
    started = [float(x) for x in connection.lrange("bench:started", 0, -1)]
    process.terminate()
    process.join(5)
    if len(started) != jobs:
        raise SystemExit(f"only {len(started)}/{jobs} jobs started")
    return [(s - e) * 1000 for e, s in zip(sent, started, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--gap", type=float, default=0.02)
    args = parse_args(parser, {"jobs": 20})
    setup()
    quiet_logs()

    from rq import Queue, SimpleWorker

    from app.jobs import types
    from app.jobs.queues import get_redis, queue_names_for_group
    from app.jobs.service import add_job
    from app.jobs.types import JobType, Priority
    from workers import processors
    from workers.worker import JobWorker

    if types.worker_group("bench") is None:
        types.declare_group(types.WorkerGroup(name="bench", size=1))
    types.register(JobType(name="bench_stamp", group="bench", timeout=30, priority=Priority.MEDIUM))
    processors.register("bench_stamp")(_stamp_processor)

    reset()
    bare_queue = Queue("bare", connection=get_redis())
    bare = measure(lambda: bare_queue.enqueue("bench.tasks.bare_stamp", "bench:started"),
                   lambda: SimpleWorker(["bare"], connection=get_redis()).work(), args.jobs, args.gap)
    reset()
    def full_worker():
        # as workers/pool.py does: the worker's bookkeeping connection per WORKER_SYNCHRONOUS_COMMIT
        # (the web side, add_job, keeps committing synchronously)
        from app.config import get_settings
        from app.db import bind_database

        settings = get_settings()
        bind_database(settings.effective_database_url, synchronous_commit=settings.worker_synchronous_commit)
        JobWorker(queue_names_for_group("bench"), connection=get_redis()).work()

    full = measure(lambda: add_job("bench_stamp", {}), full_worker, args.jobs, args.gap)
    print(f"jobs={args.jobs} gap={args.gap * 1000:.0f} ms, one idle worker each")
    print(f"bare RQ    p50 {percentile(bare, 50):6.1f} ms   p99 {percentile(bare, 99):6.1f} ms")
    print(f"full path  p50 {percentile(full, 50):6.1f} ms   p99 {percentile(full, 99):6.1f} ms"
          f"   (goal <= 20 / <= 100 ms)")
    print(f"ratio full/bare  p50 {percentile(full, 50) / percentile(bare, 50):.2f}   "
          f"p99 {percentile(full, 99) / percentile(bare, 99):.2f}   median {median(full):.1f} ms")
    require_figures({"bare RQ p50": percentile(bare, 50), "full path p50": percentile(full, 50),
                     "bare RQ p99": percentile(bare, 99), "full path p99": percentile(full, 99)})


if __name__ == "__main__":
    main()

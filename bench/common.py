"""Shared set-up for the benchmarks: a scratch PostgreSQL database and Redis db, worker processes, and the
`--quick` mode every runnable script has (tiny sizes, the same code path, non-zero exit when anything fails)."""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://127.0.0.1:5432/rmab_bench")
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
BENCH_INSTANCE_DIR = os.environ.get("BENCH_INSTANCE_DIR", "/tmp/rmab-bench")


def parse_args(parser: argparse.ArgumentParser, quick: dict[str, object]) -> argparse.Namespace:
    """Add `--quick` and parse: with it, every option named in `quick` left at its default takes the quick
    value (tiny sizes, a run of seconds: what CI runs, tests/bench/test_bench_quick.py)."""
    sizes = ", ".join(f"--{name.replace('_', '-')} {value}" for name, value in quick.items())
    parser.add_argument("--quick", action="store_true",
                        help=f"a run of seconds on tiny sizes ({sizes}), as CI runs it; exits non-zero when "
                             f"anything fails")
    args = parser.parse_args()
    if args.quick:
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def require_figures(figures: dict[str, float | None]) -> None:
    """Exit non-zero naming every figure that is missing (None) or not a number (NaN): call it after printing
    them, so a broken run still shows what it measured."""
    bad = [label for label, value in figures.items() if value is None or math.isnan(value)]
    if bad:
        raise SystemExit(f"bench broken: no figure for {', '.join(bad)}")


def setup(**settings_overrides: str) -> None:
    """Point the app at the scratch database and Redis db, migrate, and empty both."""
    from app.config import load_settings, set_settings
    from app.db import bind_database, create_postgres_database_if_missing
    from app.migrations import migrate

    create_postgres_database_if_missing(BENCH_DATABASE_URL)
    set_settings(load_settings({"DATABASE_URL": BENCH_DATABASE_URL, "REDIS_URL": BENCH_REDIS_URL,
                                "INSTANCE_DIR": BENCH_INSTANCE_DIR, "LOG_LEVEL": "warning", **settings_overrides},
                               env_file=None))
    bind_database(BENCH_DATABASE_URL)
    migrate()
    reset()


def reset() -> None:
    from app.db import database
    from app.jobs.queues import get_redis

    get_redis().flushdb()
    database.obj.execute_sql("TRUNCATE jobs, job_events CASCADE")


def quiet_logs() -> None:
    import logging

    logging.disable(logging.WARNING)


def run_workers(target, count: int) -> float:
    """Start `count` processes running target(); return seconds until all have exited."""
    context = multiprocessing.get_context("fork")
    started = time.perf_counter()
    processes = [context.Process(target=target) for _ in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"worker exited with {process.exitcode}")
    return time.perf_counter() - started


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")

"""Memory (PSS) of the whole Procfile stack under honcho: idle, then after a load.

Starts its own redis-server on a free port and a fresh PostgreSQL database (rmab_bench_memory on the
shared server), runs `honcho start` on the Procfile, waits until GET /healthz says ok, and sums PSS
(/proc/<pid>/smaps_rollup: shared pages divided among the processes sharing them) over every process
of honcho's tree. Then the load, in two rounds measured after each (the second shows whether memory
keeps growing): 1,000 `noop` jobs (add_job in a subprocess against the same database and Redis, until
all are completed) and a full pipeline run of a few books (real qbittorrent-nox, the fake Prowlarr and
Plex of tests/fakes: search → download → monitor → organize → Plex check). Stops everything it
started and drops the database.

    python bench/memory.py                         # the Procfile as it is (one supervisor for every group)
    python bench/memory.py --layout per-group      # one `python -m workers <group>` line per group instead
    python bench/memory.py --root /tmp/rmab-old    # another checkout, e.g. `git archive HEAD | tar -x -C /tmp/rmab-old`
    python bench/memory.py --jobs 0 --books 0      # idle only
    python bench/memory.py --quick                 # 1 worker a group, 50 jobs and 1 book, one round (CI)
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench.memory_load import Pipeline, run_noops  # noqa: E402
from bench.memory_stack import (  # noqa: E402
    drop_database,
    fresh_database,
    healthy,
    procfile_for,
    stack_env,
    start_redis,
    start_stack,
    stop_stack,
    worker_groups,
)
from bench.memory_tree import print_table, sample  # noqa: E402
from common import free_port, parse_args, require_figures, wait_until  # noqa: E402

GOAL_IDLE_MB = 400.0
GOAL_LOADED_MB = 450.0
# what the output must hold (tests/bench/test_bench_quick.py checks it)
FIGURES = ("PSS MB", "idle", "after load round 1", "noop jobs completed", "pending → available")


# --- main -------------------------------------------------------------------------------------------------

def verdict(label: str, total: float, goal: float) -> str:
    return f"{label} {total:.1f} MB <= {goal:.0f} MB: {'ok' if total <= goal else 'NOT MET'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run (default: this one)")
    parser.add_argument("--layout", choices=("procfile", "per-group"), default="procfile",
                        help="procfile: the checkout's Procfile; per-group: one worker line per group")
    parser.add_argument("--jobs", type=int, default=1000, help="noop jobs of the load (0: none)")
    parser.add_argument("--books", type=int, default=6, help="books through the whole pipeline (0: none)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="load rounds, measured after each (a second round shows whether memory keeps growing)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_MEMORY_DATABASE_URL",
                                                                 "postgresql://127.0.0.1:5432/rmab_bench_memory"))
    parser.add_argument("--workers-per-group", type=int, default=0,
                        help="processes of every worker group (WORKERS_<GROUP>; 0: the checkout's own counts)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait before each sample")
    args = parse_args(parser, {"jobs": 50, "books": 1, "rounds": 1, "workers_per_group": 1, "settle": 1.0})
    root = args.root.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="rmab-bench-memory-"))
    marker = uuid.uuid4().hex
    redis_server, redis_url = start_redis(workdir)
    pipeline = None
    honcho = None
    try:
        fresh_database(args.database_url)
        pipeline = Pipeline(workdir, args.books) if args.books else None
        services = pipeline.start() if pipeline else {}
        port = free_port()
        env = stack_env(root, workdir, args.database_url, redis_url, port, marker, services)
        if args.workers_per_group:
            env.update({f"WORKERS_{group.upper()}": str(args.workers_per_group)
                        for group in worker_groups(root, env)})
        procfile = procfile_for(root, args.layout, env)
        print(f"root {root}, layout {args.layout}; Procfile:")
        print("".join(f"  {line}\n" for line in procfile.splitlines()))
        honcho, log = start_stack(root, workdir, procfile, env)
        wait_until(lambda: _died(log) if honcho.poll() is not None else healthy(port), 180, "GET /healthz ok")
        time.sleep(args.settle)
        idle = sample(honcho.pid, redis_url, procfile)
        idle_total = print_table("idle", idle)
        loaded_totals = []
        previous = idle
        for round_number in range(args.rounds if args.jobs or pipeline else 0):
            if args.jobs:
                run_noops(root, env, args.jobs)
            if pipeline:
                pipeline.run(port, round_number)
            time.sleep(args.settle)
            loaded = sample(honcho.pid, redis_url, procfile)
            title = (f"after load round {round_number + 1} of {args.rounds} ({args.jobs} noop jobs, {args.books} books "
                     f"through the pipeline each)")
            loaded_totals.append(print_table(title, loaded, {item.pid: item for item in previous}))
            previous = loaded
        print()
        print(verdict("idle", idle_total, GOAL_IDLE_MB))
        for round_number, total in enumerate(loaded_totals, 1):
            print(verdict(f"after load round {round_number}", total, GOAL_LOADED_MB))
        # no process of the stack found (or none measurable) is a broken bench, not a small figure
        require_figures({"idle": idle_total or None,
                         **{f"after load round {n}": total or None for n, total in enumerate(loaded_totals, 1)}})
        return 0
    finally:
        if honcho is not None:
            stop_stack(honcho, marker)
        if pipeline is not None:
            pipeline.stop()
        redis_server.terminate()
        redis_server.wait(10)
        drop_database(args.database_url)
        shutil.rmtree(workdir, ignore_errors=True)


def _died(log: Path) -> bool:
    raise SystemExit("the stack exited before it was healthy:\n" + log.read_text()[-3000:])


if __name__ == "__main__":
    sys.exit(main())

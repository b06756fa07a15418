"""Run counters and the run-duration histogram, kept in Redis so every process adds to the same numbers.

Worker processes come and go (pools respawn them, hosts run subsets), so in-process prometheus_client
metrics would reset with each of them; and the database history is pruned by cleanup_job_history, so
counting rows would make a counter go down. Each run's end adds to two Redis hashes instead:

- `rmab:metrics:runs`      field `<type>|<outcome>` → count (outcome: completed, failed, retried, polled)
- `rmab:metrics:durations` fields `<type>|<bucket upper bound>`, `<type>|sum`, `<type>|count`

A completed run's additions ride in the retention script's round trip (app/jobs/retention.py); the
others (failures, polls) are one pipelined call. The web app's collector (app/web/metrics.py) reads
both hashes at scrape time. Counters only go up; a Redis restart without persistence resets them,
which Prometheus handles as a counter reset.
"""
from __future__ import annotations

from datetime import UTC
from typing import Any

RUNS_KEY = "rmab:metrics:runs"
DURATIONS_KEY = "rmab:metrics:durations"
BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
OUTCOMES = ("completed", "failed", "retried", "polled")

# Lua for the same additions (KEYS: runs, durations; ARGV: type, outcome, seconds, bucket or "+Inf").
LUA_RECORD = """
local field = ARGV[1] .. '|'
redis.call('HINCRBY', KEYS[1], field .. ARGV[2], 1)
redis.call('HINCRBY', KEYS[2], field .. ARGV[4], 1)
redis.call('HINCRBY', KEYS[2], field .. 'count', 1)
redis.call('HINCRBYFLOAT', KEYS[2], field .. 'sum', ARGV[3])
"""


def bucket_for(seconds: float) -> str:
    """The smallest bucket bound that holds `seconds` (stored non-cumulative; the collector sums up)."""
    for bound in BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


def record_run(connection: Any, job_type: str, outcome: str, seconds: float) -> None:
    """Add one run's end to the counters (one round trip). Never raises: metrics must not fail a job."""
    seconds = max(float(seconds), 0.0)
    prefix = f"{job_type}|"
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hincrby(RUNS_KEY, prefix + outcome, 1)
            pipe.hincrby(DURATIONS_KEY, prefix + bucket_for(seconds), 1)
            pipe.hincrby(DURATIONS_KEY, prefix + "count", 1)
            pipe.hincrbyfloat(DURATIONS_KEY, prefix + "sum", seconds)
            pipe.execute()
    except Exception:  # Redis briefly away: a lost sample, not a failed job
        pass


def read(connection: Any) -> tuple[dict[tuple[str, str], int], dict[str, dict[str, float]]]:
    """(runs by (type, outcome), durations by type: {bound or 'sum'/'count': value}) as stored."""
    runs: dict[tuple[str, str], int] = {}
    for field, value in connection.hgetall(RUNS_KEY).items():
        job_type, _, outcome = field.decode().rpartition("|")
        runs[(job_type, outcome)] = int(value)
    durations: dict[str, dict[str, float]] = {}
    for field, value in connection.hgetall(DURATIONS_KEY).items():
        job_type, _, name = field.decode().rpartition("|")
        durations.setdefault(job_type, {})[name] = float(value)
    return runs, durations


def run_seconds(rq_job: Any) -> float:
    """How long the run that just ended took, from RQ's start time (0 when unknown)."""
    from datetime import datetime

    started = getattr(rq_job, "started_at", None)
    if started is None:
        return 0.0
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return max((datetime.now(UTC) - started).total_seconds(), 0.0)

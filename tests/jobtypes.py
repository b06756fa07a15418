"""Job types and processors that exist only for tests (registered in-process and in test workers)."""
from __future__ import annotations

import os
import time

from app.jobs import types
from app.jobs.errors import PermanentJobError
from app.jobs.logger import create_job_logger
from app.jobs.queues import get_redis
from app.jobs.types import JobType, Priority, WorkerGroup
from workers.processors import register

# The worker group of the test-only types (`tests/run_pool.py testing`); WORKERS_TESTING sizes it like any group.
TESTING_GROUP = types.worker_group("testing") or types.declare_group(WorkerGroup(name="testing", size=1))

for _name, _timeout in (("test_record", 30), ("test_fail", 30), ("test_permanent", 30), ("test_sleep", 120),
                        ("test_sleep_then_chain", 120), ("test_checkpoints", 120)):
    types.register(JobType(name=_name, group=TESTING_GROUP.name, timeout=_timeout, priority=Priority.MEDIUM))


@register("test_record")
def record(payload: dict) -> dict:
    get_redis().rpush("test:order", payload.get("tag", ""))
    return {"tag": payload.get("tag")}


@register("test_fail")
def fail(payload: dict) -> None:
    get_redis().rpush(f"test:runs:{payload['jobId']}", repr(time.time()))
    raise RuntimeError(f"boom for {payload.get('tag', 'job')}")


@register("test_permanent")
def permanent(payload: dict) -> None:
    get_redis().rpush(f"test:runs:{payload['jobId']}", repr(time.time()))
    raise PermanentJobError("PROWLARR_API_KEY is rejected by Prowlarr (401)")


@register("test_sleep")
def sleep(payload: dict) -> dict:
    """Sleeps on its first run only, so a retried run finishes quickly."""
    connection = get_redis()
    run = connection.incr(f"test:runs:{payload['jobId']}")
    log = create_job_logger(payload["jobId"], "TestSleep")
    log.info(f"run {run} started")
    if run == 1:
        connection.set(f"test:pid:{payload['jobId']}", os.getpid())
        connection.set(f"test:sleeping:{payload['jobId']}", "1")
        time.sleep(float(payload.get("seconds", 5)))
    log.info(f"run {run} finished")
    return {"run": run}


@register("test_sleep_then_chain")
def sleep_then_chain(payload: dict) -> dict:
    """Like test_sleep, then logs and starts a next step (test_record): the writes a stale run must not make."""
    connection = get_redis()
    run = connection.incr(f"test:runs:{payload['jobId']}")
    log = create_job_logger(payload["jobId"], "TestChain")
    if run == 1:
        connection.set(f"test:pid:{payload['jobId']}", os.getpid())
        connection.set(f"test:sleeping:{payload['jobId']}", "1")
        time.sleep(float(payload.get("seconds", 5)))
    log.info(f"run {run} finished")
    from app.jobs.service import add_job

    add_job("test_record", {"tag": f"chained-by-run-{run}"})
    return {"run": run}


@register("test_checkpoints")
def checkpoints(payload: dict) -> dict:
    """A cooperative long job: a loop that counts its rounds in Redis and logs each one (every JobLogger call is
    a checkpoint), until `rounds` (default: 10 minutes' worth)."""
    connection = get_redis()
    log = create_job_logger(payload["jobId"], "TestCheckpoints")
    connection.set(f"test:pid:{payload['jobId']}", os.getpid())
    connection.set(f"test:sleeping:{payload['jobId']}", "1")
    for round_number in range(int(payload.get("rounds", 6000))):
        connection.incr(f"test:rounds:{payload['jobId']}")
        log.info(f"round {round_number}")
        time.sleep(0.1)
    return {"rounds": payload.get("rounds", 6000)}

"""Poll batches: the waiting polls of monitor_download live in one Redis sorted set, and a few RQ jobs (each a
"poll batch", workers/poll_batch.py) poll up to BATCH_SIZE due downloads at a time, instead of one RQ run per
poll of each download (PostgreSQL only: the batch's set-based, per-row fenced statements are PostgreSQL SQL;
on SQLite a poll stays an RQ Retry of its own job, workers/runner.py).

- `DUE_KEY` (sorted set): job id → when its next poll is due (epoch seconds). A run that ends with "poll
  again" writes its row first (`delayed`, `polling`, run_at: app/jobs/state.py) and then adds its id here; so
  does add_job for a new download's first poll (`poll_batched`, app/jobs/service.py: no RQ job at all).
- `promote` (the scheduler process, several times a second; and each batch as it ends): puts as many batch
  jobs on `monitor_download.high` as the due polls need, minus the batches already waiting
  (`QUEUED_KEY`). A batch job carries no ids: it takes its downloads when it runs (`take_due`, one Lua script
  that pops due members), so a batch job lost or doubled loses or doubles no poll; a waiting batch job is on
  the type's queue, so Pause of monitor_download and the group's workers apply to it.
- `repair_lost` (the scheduler's lost-job pass): a waiting poll whose row is due for longer than
  LOST_POLL_GRACE and whose id is in no set (Redis restarted without persistence, or a batch was killed
  between popping and claiming it) is added again. A row can be in the set once only (a sorted set), and a
  batch claims only rows still waiting and due (state.claim_polls), and a download a batch handed to its own
  run is `pending`, not waiting (state.release_polls), so a repair never polls twice.
"""
from __future__ import annotations

import json
import math
import time
import uuid
from datetime import timedelta
from typing import Any

from app.db import database
from app.jobs import pausing
from app.jobs.types import JobKind
from app.models import Job, JobStatus, utcnow

JOB_TYPE = JobKind.MONITOR_DOWNLOAD
DUE_KEY = "rmab:polls:due"
QUEUED_KEY = "rmab:polls:batches"  # batch job id → when it was queued (the batches waiting to run)
BATCH_SIZE = 200
# high: a batch is due work, and must not wait behind a backlog of first polls and other monitor runs on medium
BATCH_QUEUE = f"{JOB_TYPE}.high"
BATCH_FUNCTION = "workers.poll_batch.run_batch"  # named by path: app never imports workers
BATCH_ID_PREFIX = "pollbatch-"
EARLY_SECONDS = 0.25  # a batch may poll this much before the due time (it runs on the next promote otherwise)
QUEUED_STALE_SECONDS = 30.0  # a queued batch not started after this long is not counted (lost with Redis)
MAX_BATCHES_PER_PROMOTE = 50
# A poll popped by a batch is claimed within moments (the batch reads the client's answer in between): a poll due
# this long and in no set was lost. Adding one again that a batch holds is harmless (one member per id; the claim
# takes a row once).
LOST_POLL_GRACE = timedelta(seconds=5)
BATCH_TIMEOUT = 300

# Pop up to ARGV[2] members due by ARGV[1] (their scores too), in due order: one batch's downloads.
_TAKE_DUE = """
local taken = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #taken, 2 do redis.call('ZREM', KEYS[1], taken[i]) end
return taken
"""


def enabled() -> bool:
    """Poll batches run on PostgreSQL (the record of truth in production); SQLite keeps a poll per RQ job."""
    db = database.obj
    return db is not None and db.param != "?"


def polls_in_batches(job_type: str) -> bool:
    """Whether a poll of `job_type` waits in the due set (monitor_download, on PostgreSQL); any other type that
    returns Reschedule keeps RQ's Retry (workers/runner.py)."""
    return job_type == JOB_TYPE and enabled()


def schedule(connection: Any, due: dict[str, float]) -> None:
    """Add waiting polls (job id → due epoch seconds); written after their rows."""
    if due:
        connection.zadd(DUE_KEY, due)


def take_due(connection: Any, limit: int = BATCH_SIZE, now: float | None = None) -> dict[str, float]:
    """Pop up to `limit` due polls (job id → due time), atomically: no two batches get the same download."""
    cutoff = (time.time() if now is None else now) + EARLY_SECONDS
    flat = connection.eval(_TAKE_DUE, 1, DUE_KEY, repr(cutoff), limit)
    return {_text(flat[i]): float(flat[i + 1]) for i in range(0, len(flat), 2)}


def batch_started(connection: Any, batch_id: str | None) -> None:
    if batch_id:
        connection.zrem(QUEUED_KEY, batch_id)


def promote(connection: Any, now: float | None = None) -> int:
    """Queue the batch jobs the due polls need (none while monitor_download is paused). Returns how many."""
    now = time.time() if now is None else now
    pipe = connection.pipeline(transaction=False)
    pipe.zremrangebyscore(QUEUED_KEY, "-inf", now - QUEUED_STALE_SECONDS)
    pipe.zcount(DUE_KEY, "-inf", now + EARLY_SECONDS)
    pipe.zcard(QUEUED_KEY)
    pipe.sismember(pausing.PAUSED_KEY, JOB_TYPE)
    _, due, queued, paused = pipe.execute()
    wanted = min(math.ceil(due / BATCH_SIZE) - queued, MAX_BATCHES_PER_PROMOTE)
    if paused or wanted <= 0:
        return 0
    from app.jobs.queues import get_queue

    queue = get_queue(BATCH_QUEUE, connection)
    for _ in range(wanted):
        batch_id = f"{BATCH_ID_PREFIX}{uuid.uuid4().hex}"
        connection.zadd(QUEUED_KEY, {batch_id: now})  # first: the batch removes it as it starts
        queue.enqueue(BATCH_FUNCTION, job_id=batch_id, result_ttl=0, failure_ttl=3600, job_timeout=BATCH_TIMEOUT,
                      description="monitor_download poll batch")
    return wanted


def repair_lost(connection: Any, limit: int = 1000) -> list[str]:
    """Add again the waiting polls due for longer than LOST_POLL_GRACE that are in no set. Returns their ids."""
    cutoff = utcnow() - LOST_POLL_GRACE
    rows = list(Job.select(Job.id).where(waiting_poll() & (Job.run_at < cutoff)).limit(limit))
    if not rows:
        return []
    ids = [str(row.id) for row in rows]
    pipe = connection.pipeline(transaction=False)
    for job_id in ids:
        pipe.zscore(DUE_KEY, job_id)
    lost = [job_id for job_id, score in zip(ids, pipe.execute(), strict=True) if score is None]
    if lost:
        connection.zadd(DUE_KEY, dict.fromkeys(lost, time.time()), nx=True)
    return lost


def waiting_poll() -> Any:
    """The rows whose poll waits in the due set (and in no RQ job): monitor_download, delayed + polling."""
    return (Job.type == JOB_TYPE) & (Job.status == JobStatus.DELAYED.value) & (Job.polling == True)  # noqa: E712


def insert_events(events: list[tuple[str, str, str, str, dict | None]]) -> int:
    """The info events of a batch's polls, each (job id, token, context, message, metadata), in one INSERT, each
    row fenced by its own run's token (stored only while that row is active with it). Returns rows stored."""
    if not events:
        return 0
    from app.config import get_settings
    from app.redaction import redact_text

    secrets = get_settings().secret_values()
    now = utcnow()
    values = ", ".join(["(%s::uuid, %s::uuid, %s, %s, %s, %s::jsonb)"] * len(events))
    sql = ("INSERT INTO job_events (id, created_at, updated_at, job_id, level, context, message, metadata) "
           f"SELECT v.id, %s, %s, v.job_id, 'info', v.context, v.message, v.metadata FROM (VALUES {values}) "
           "AS v(id, job_id, token, context, message, metadata) JOIN jobs ON jobs.id = v.job_id "
           "AND jobs.status = 'active' AND jobs.run_token = v.token")
    params: list[Any] = [now, now]
    for job_id, token, context, message, metadata in events:
        params += [uuid.uuid4().hex, job_id, token, context, redact_text(message, secrets),
                   json.dumps(metadata, allow_nan=False) if metadata is not None else None]
    return database.obj.execute_sql(sql, params).rowcount


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

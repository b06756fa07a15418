"""Retention: count-based in Redis (like Bull's removeOnComplete/removeOnFail), age-based in the database."""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from rq.registry import FailedJobRegistry, FinishedJobRegistry

from app.jobs import metrics
from app.jobs.queues import queue_names_for_type
from app.models import TERMINAL_JOB_STATUSES, Job, JobEvent, utcnow

_BATCH = 500


def _keep_limit(finished: bool) -> int:
    from app.config import get_settings

    settings = get_settings()
    return settings.redis_keep_completed if finished else settings.redis_keep_failed


def _retention_key(job_type: str, finished: bool) -> str:
    return f"rmab:retention:{'finished' if finished else 'failed'}:{job_type}"


# KEYS: our ordering zset, the two metrics hashes, then the type's RQ registries (finished or failed, one
# per priority queue). ARGV: job id, score (precise time), keep, then job type, outcome, seconds, bucket
# (app/jobs/metrics.py; an empty type records nothing). Records the run, deletes the oldest beyond `keep`
# everywhere, in one call. The key prefixes are RQ's own (Job.redis_job_namespace_prefix `rq:job:`,
# rq.results.get_key, ExecutionRegistry.key_template), written out because the script builds keys from ids;
# tests/jobs/test_rq_keys.py fails when an RQ upgrade changes them.
_TRIM = """
if ARGV[4] ~= '' then
  local field = ARGV[4] .. '|'
  redis.call('HINCRBY', KEYS[2], field .. ARGV[5], 1)
  redis.call('HINCRBY', KEYS[3], field .. ARGV[7], 1)
  redis.call('HINCRBY', KEYS[3], field .. 'count', 1)
  redis.call('HINCRBYFLOAT', KEYS[3], field .. 'sum', ARGV[6])
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if excess <= 0 then return 0 end
local doomed = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
for _, id in ipairs(doomed) do
  redis.call('ZREM', KEYS[1], id)
  for i = 4, #KEYS do redis.call('ZREM', KEYS[i], id) end
  redis.call('DEL', 'rq:job:' .. id, 'rq:results:' .. id, 'rq:executions:' .. id)
end
return #doomed
"""


def trim_redis(connection: Any, job_type: str, rq_job_id: str, *, finished: bool,
               outcome: str | None = None, seconds: float = 0.0) -> int:
    """Record `rq_job_id` as the newest finished (or failed) RQ job of `job_type`; delete the oldest
    beyond the limit, across the type's priority queues. Returns how many were deleted. With `outcome`,
    the run is also counted in the metrics (app/jobs/metrics.py), in the same call.

    RQ's own registries score by whole seconds (ties), so the order lives in a sorted set of ours,
    scored by a precise clock. One round trip (a Lua script).
    """
    keep = max(_keep_limit(finished), 1)
    registry_class = FinishedJobRegistry if finished else FailedJobRegistry
    keys = [_retention_key(job_type, finished), metrics.RUNS_KEY, metrics.DURATIONS_KEY]
    keys += [registry_class(name, connection=connection).key for name in queue_names_for_type(job_type)]
    seconds = max(float(seconds), 0.0)
    args = [rq_job_id, repr(time.time()), keep, job_type if outcome else "", outcome or "", repr(seconds),
            metrics.bucket_for(seconds)]
    return int(_trim_script(connection)(keys=keys, args=args))


def _trim_script(connection: Any) -> Any:
    script = _scripts.get(id(connection))
    if script is None:
        script = _scripts[id(connection)] = connection.register_script(_TRIM)
    return script


_scripts: dict[int, Any] = {}


def cleanup_job_history(days: int, now: Any = None) -> dict[str, Any]:
    """Delete finished jobs older than `days` and their events, in batches. Active work is never touched."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    jobs_deleted = events_deleted = 0
    while True:
        ids = [row.id for row in Job.select(Job.id)
               .where((Job.created_at < cutoff) & Job.status.in_(TERMINAL_JOB_STATUSES)).limit(_BATCH)]
        if not ids:
            break
        with Job._meta.database.atomic():
            events_deleted += JobEvent.delete().where(JobEvent.job.in_(ids)).execute()
            jobs_deleted += Job.delete().where(Job.id.in_(ids)).execute()
    return {"jobsDeleted": jobs_deleted, "eventsDeleted": events_deleted, "cutoff": cutoff.isoformat() + "Z"}

"""RQ Queue class with a single-round-trip dequeue across many queues that skips paused job types.

RQ's `Queue.lpop` checks each queue with its own LPOP before blocking. A worker of one job type
listens on three priority queues (and the maintenance worker on 5 types × 3), so an idle check
cost up to 15 round trips per job. This Lua script pops from the first non-empty queue, in the
given order, in one call: same semantics, one round trip.

Paused job types (app/jobs/pausing.py) are read in that same call: the script skips the queues of
every type in the paused set. A blocking dequeue (a worker not in burst mode) first runs the script
(one round trip, as BLPOP was when work is waiting), then blocks with BLPOP on the queues that are
not paused; a job that wakes it is handed back to the head of its queue when its type was paused
meanwhile (one more round trip, only when an idle worker wakes). While any of its types is paused a
worker blocks for at most PAUSED_RECHECK_SECONDS, so a Resume takes effect within that.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import peewee
from rq import Queue
from rq.exceptions import DequeueTimeout

from app.jobs.pausing import MIRROR_LOADED, PAUSED_KEY

PAUSED_RECHECK_SECONDS = 1.0
log = logging.getLogger(__name__)

# KEYS[1]: the paused set; KEYS[2..n]: the queues in order; ARGV[i]: the job type of KEYS[i + 1]; the last ARGV:
# the loaded marker ('' when the set is read as it is: the table could not be read).
# Returns {1, key, job id} for a pop, {0, paused types…} for nothing to pop, {-1} when the set is not loaded.
_POP_FIRST_OPEN = """
if ARGV[#ARGV] ~= '' and redis.call('SISMEMBER', KEYS[1], ARGV[#ARGV]) == 0 then return {-1} end
local paused = {}
for i = 2, #KEYS do
  local job_type = ARGV[i - 1]
  if redis.call('SISMEMBER', KEYS[1], job_type) == 1 then
    paused[#paused + 1] = job_type
  else
    local value = redis.call('LPOP', KEYS[i])
    if value then return {1, KEYS[i], value} end
  end
end
return {0, unpack(paused)}
"""

# KEYS: the paused set, the queue; ARGV: the job type, the job id, the loaded marker. 1: keep the job; 0: it was
# pushed back to the head of its queue (its type is paused, or the paused set is not loaded).
_KEEP_OR_GIVE_BACK = """
if redis.call('SISMEMBER', KEYS[1], ARGV[3]) == 1 and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  return 1
end
redis.call('LPUSH', KEYS[2], ARGV[2])
return 0
"""


def job_type_of_key(queue_key: str) -> str:
    """`rq:queue:organize_files.high` → `organize_files`."""
    return queue_key.removeprefix(Queue.redis_queue_namespace_prefix).rsplit(".", 1)[0]


class JobQueue(Queue):
    _scripts: dict[tuple[int, str], Any] = {}

    @classmethod
    def _script(cls, connection: Any, source: str) -> Any:
        key = (id(connection), source)
        script = cls._scripts.get(key)
        if script is None:
            script = cls._scripts[key] = connection.register_script(source)
        return script

    @classmethod
    def _pop_open(cls, keys: list[str], connection: Any) -> tuple[tuple[str, bytes] | None, set[str]]:
        """One round trip: the first job of a queue whose type is not paused, and the paused types seen."""
        job_types = [job_type_of_key(key) for key in keys]
        script = cls._script(connection, _POP_FIRST_OPEN)
        marker = MIRROR_LOADED
        for _ in range(2):
            result = script(keys=[PAUSED_KEY, *keys], args=[*job_types, marker])
            if result[0] == 1:
                key = result[1].decode() if isinstance(result[1], bytes) else result[1]
                return (key, result[2]), set()
            if result[0] == 0:
                return None, {name.decode() if isinstance(name, bytes) else name for name in result[1:]}
            if not _load_mirror(connection):  # Redis lost the paused set: copy it from the table, then try again
                marker = ""
        return None, set(job_types)  # still not loaded (Redis flushed again meanwhile): take nothing now

    @classmethod
    def lpop(cls, queue_keys: Sequence[str], timeout: int | None, connection: Any = None):
        keys = [key.decode() if isinstance(key, bytes) else key for key in queue_keys]
        if timeout is None:
            return cls._pop_open(keys, connection)[0]
        deadline = time.monotonic() + timeout
        while True:
            popped, paused = cls._pop_open(keys, connection)
            if popped is not None:
                return popped
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DequeueTimeout(timeout, keys)
            open_keys = [key for key in keys if job_type_of_key(key) not in paused]
            wait = min(remaining, PAUSED_RECHECK_SECONDS) if paused else remaining
            if not open_keys:
                time.sleep(wait)
                continue
            result = connection.blpop(open_keys, wait)
            if result is None:
                continue
            key = result[0].decode() if isinstance(result[0], bytes) else result[0]
            keep = cls._script(connection, _KEEP_OR_GIVE_BACK)
            if keep(keys=[PAUSED_KEY, key], args=[job_type_of_key(key), result[1], MIRROR_LOADED]) == 1:
                return key, result[1]

    @classmethod
    def lmove(cls, connection: Any, queue_key: str, timeout: int | None):
        """RQ's single-queue dequeue, routed through `lpop` so a paused type is skipped there too."""
        return cls.lpop([queue_key], timeout, connection=connection)


def _load_mirror(connection: Any) -> bool:
    """Load the paused set from the table. False when the database cannot be read: then this dequeue goes by
    the set as it is (a run cannot start without the database anyway: the runner puts it back, no attempt
    spent, and by its next pop the set is loaded)."""
    from app.db import ensure_bound
    from app.jobs.pausing import load_mirror

    try:
        ensure_bound()
        load_mirror(connection)
        return True
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        log.warning("paused job types could not be read from the database (%s); dequeuing without them",
                    type(exc).__name__)
        return False

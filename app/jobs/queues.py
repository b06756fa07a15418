"""Queue naming, and the RQ queue of a name (the Redis connection: app/redis_connection.py).

Every job type has three RQ queues, `<type>.high`, `<type>.medium`, `<type>.low`. A worker listens
on them in that order with RQ's strict ("default") dequeue strategy, which is how the numeric
priority is honoured within a job type: RQ itself has no per-job priority.
"""
from __future__ import annotations

from redis import Redis
from rq import Queue

from app.jobs import types
from app.jobs.types import Priority
from app.redis_connection import get_redis  # also read from here by tests and benchmarks

PRIORITY_ORDER = (Priority.HIGH, Priority.MEDIUM, Priority.LOW)  # the order a worker serves its queues in


def queue_name(job_type: str, priority: Priority) -> str:
    return f"{job_type}.{priority.name.lower()}"


def queue_names_for_type(job_type: str) -> list[str]:
    return [queue_name(job_type, priority) for priority in PRIORITY_ORDER]


def queue_names_for_group(group: str) -> list[str]:
    """All queues a worker of `group` serves: every high queue first, then medium, then low."""
    members = [t.name for t in types.types_in_group(group)]
    return [queue_name(name, priority) for priority in PRIORITY_ORDER for name in members]


def type_of_queue(name: str) -> str:
    return name.rsplit(".", 1)[0]


def get_queue(name: str, connection: Redis | None = None) -> Queue:
    return Queue(name, connection=connection or get_redis())

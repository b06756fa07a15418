"""Live workers, read from RQ's worker registry in Redis (a worker's name starts with its group): counts per
group (/healthz, the schedules' late check) and each worker with its current job (the queues page)."""
from __future__ import annotations

from collections import Counter
from typing import Any

from peewee import JOIN
from rq import Worker

from app.jobs.service import db_id_from_rq_id
from app.models import Audiobook, Job, Request, utcnow

_FIELDS = ("hostname", "pid", "state", "current_job")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def group_of_worker(worker_name: str) -> str:
    """`organize_files-host-123-0` → `organize_files` (workers/pool.py worker_name)."""
    return worker_name.split("-", 1)[0]


def live_workers_by_group(connection: Any) -> Counter:
    counts: Counter = Counter()
    for name in Worker.all_keys(connection=connection):
        counts[group_of_worker(_text(name).rsplit(":", 1)[-1])] += 1
    return counts


def live_workers(connection: Any) -> list[dict]:
    """Each registered worker, by group and name: {name, group, host, pid, state, job}; `job` is the run it holds
    ({id, type, status, requestId, bookTitle, startedAt, runningSeconds}) or None. Two round trips to Redis
    (the registry, then every worker's fields in one pipeline) and one query."""
    keys = sorted(_text(key) for key in Worker.all_keys(connection=connection))
    with connection.pipeline(transaction=False) as batch:
        for key in keys:
            batch.hmget(key if key.startswith("rq:worker:") else f"rq:worker:{key}", *_FIELDS)
        rows = batch.execute() if keys else []
    workers = []
    for key, values in zip(keys, rows, strict=True):
        host, pid, state, current = (_text(value) if value is not None else None for value in values)
        if host is None and pid is None:  # expired between the two reads
            continue
        name = key.rsplit(":", 1)[-1]
        workers.append({"name": name, "group": group_of_worker(name), "host": host,
                        "pid": int(pid) if pid and pid.isdigit() else None, "state": state,
                        "jobId": db_id_from_rq_id(current) if current else None, "job": None})
    _attach_jobs(workers)
    return sorted(workers, key=lambda w: (w["group"], w["name"]))


def _attach_jobs(workers: list[dict]) -> None:
    ids = [worker["jobId"] for worker in workers if worker["jobId"]]
    if not ids:
        return
    now = utcnow()
    query = (Job.select(Job.id, Job.type, Job.status, Job.request, Job.started_at, Audiobook.title)
             .join(Request, on=(Job.request == Request.id), join_type=JOIN.LEFT_OUTER)
             .join(Audiobook, on=(Request.audiobook == Audiobook.id), join_type=JOIN.LEFT_OUTER)
             .where(Job.id.in_(ids)).objects())
    jobs = {str(row.id): row for row in query}
    for worker in workers:
        row = jobs.get(worker["jobId"] or "")
        if row is None:
            continue
        worker["job"] = {"id": str(row.id), "type": row.type, "status": row.status,
                         "requestId": str(row.request_id) if row.request_id else None,
                         "bookTitle": getattr(row, "title", None),
                         "startedAt": row.started_at.isoformat() + "Z" if row.started_at else None,
                         "runningSeconds": round((now - row.started_at).total_seconds(), 1) if row.started_at else None}

"""Live workers per group, counted from RQ's worker registry in Redis (a worker's name starts with its group)."""
from __future__ import annotations

from collections import Counter
from typing import Any

from rq import Worker


def live_workers_by_group(connection: Any) -> Counter:
    counts: Counter = Counter()
    for name in Worker.all_keys(connection=connection):
        worker_name = name.decode() if isinstance(name, bytes) else name
        worker_name = worker_name.rsplit(":", 1)[-1]
        counts[worker_name.split("-", 1)[0]] += 1
    return counts

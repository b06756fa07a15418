"""Fast unit test of the queue statistics on fakeredis (the same reads run on real Redis in test_dashboard)."""
from __future__ import annotations

import fakeredis
from rq import Queue

from app.dashboard.queues import queue_stats
from app.jobs.queues import queue_name
from app.jobs.types import Priority


def test_queue_stats_counts_waiting_jobs_across_priority_queues_and_their_age():
    connection = fakeredis.FakeRedis()
    for level in (Priority.HIGH, Priority.LOW, Priority.LOW):
        Queue(queue_name("scan_plex", level), connection=connection).enqueue("bench.tasks.bare_noop")
    rows = {r["type"]: r for r in queue_stats(connection, {"scan_plex": 1}, {"scan_plex": 1})}
    scan = rows["scan_plex"]
    assert scan["waiting"] == 3 and scan["active"] == 0 and scan["failed"] == 0
    assert scan["oldestWaitingSeconds"] is not None and scan["oldestWaitingSeconds"] >= 0
    assert scan["liveWorkers"] == 1 and scan["configuredWorkers"] == 1
    assert rows["search_indexers"]["waiting"] == 0 and rows["search_indexers"]["liveWorkers"] == 0

"""Fast unit test of the queue statistics on fakeredis (the same reads run on real Redis in test_dashboard)."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import fakeredis
from rq import Queue

from app.jobs.queues import queue_name
from app.jobs.types import Priority
from app.reports.queue_stats import queue_stats


def test_queue_stats_counts_waiting_jobs_across_priority_queues_and_their_age(monkeypatch):
    connection = fakeredis.FakeRedis()
    jobs = [Queue(queue_name("scan_plex", level), connection=connection).enqueue("bench.tasks.bare_noop")
            for level in (Priority.HIGH, Priority.LOW, Priority.LOW)]
    now = jobs[0].enqueued_at.timestamp() + 90.04  # the first job has waited longest
    monkeypatch.setattr(sys.modules[queue_stats.__module__], "time", SimpleNamespace(time=lambda: now))
    rows = {r["type"]: r for r in queue_stats(connection, {"scan_plex": 1}, {"scan_plex": 1})}
    scan = rows["scan_plex"]
    assert scan["waiting"] == 3 and scan["active"] == 0 and scan["failed"] == 0
    assert scan["oldestWaitingSeconds"] == 90.0  # seconds, one decimal
    assert scan["liveWorkers"] == 1 and scan["configuredWorkers"] == 1
    assert rows["search_indexers"]["waiting"] == 0 and rows["search_indexers"]["liveWorkers"] == 0

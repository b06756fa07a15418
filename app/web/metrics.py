"""GET /metrics: Prometheus exposition by prometheus_client (admin session or bearer token, like every
admin route).

A collector reads, at scrape time, what every process recorded in Redis (app/jobs/metrics.py): run
counters per type and outcome and the run-duration histogram, both covering every run and surviving
cleanup_job_history; plus gauges for queue depth per type and state, paused job types, live workers per
group, and jobs in the database per type and status.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app
from peewee import fn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from app.auth.guards import api_admin_required
from app.jobs import metrics as run_metrics
from app.jobs.queues import get_redis
from app.models import Job
from app.reports.queue_stats import queue_stats
from app.reports.workers import live_workers_by_group

bp = Blueprint("metrics", __name__)


def histogram_buckets(stored: dict[str, float]) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs, ending with +Inf, from the per-bucket counts as stored."""
    running, buckets = 0.0, []
    for bound in run_metrics.BUCKETS:
        running += stored.get(repr(bound), 0.0)
        buckets.append((repr(bound), running))
    buckets.append(("+Inf", running + stored.get("+Inf", 0.0)))
    return buckets


class JobSystemCollector:
    """Everything /metrics shows, read fresh on each scrape."""

    def __init__(self, connection: Any, worker_counts: dict[str, int]):
        self.connection = connection
        self.worker_counts = worker_counts

    def collect(self) -> Iterator[Metric]:
        runs, durations = run_metrics.read(self.connection)
        counter = CounterMetricFamily("rmab_job_runs", "Job runs that ended, by type and outcome "
                                      "(completed, failed: last attempt, retried: an attempt that will be "
                                      "retried, polled: a poll that reschedules itself).",
                                      labels=["type", "outcome"])
        for (job_type, outcome), count in sorted(runs.items()):
            counter.add_metric([job_type, outcome], count)
        yield counter

        histogram = HistogramMetricFamily("rmab_job_duration_seconds", "Run time of every job run.",
                                          labels=["type"])
        for job_type, stored in sorted(durations.items()):
            histogram.add_metric([job_type], histogram_buckets(stored), sum_value=stored.get("sum", 0.0))
        yield histogram

        live = dict(live_workers_by_group(self.connection))
        depth = GaugeMetricFamily("rmab_queue_depth", "Jobs waiting, active, delayed and failed in Redis per "
                                  "job type.", labels=["type", "state"])
        paused = GaugeMetricFamily("rmab_queue_paused", "1 while an admin has paused the job type's queues.",
                                   labels=["type"])
        for row in queue_stats(self.connection, live, self.worker_counts):
            for state in ("waiting", "active", "delayed", "failed"):
                depth.add_metric([row["type"], state], row[state])
            paused.add_metric([row["type"]], 1 if row["paused"] else 0)
        yield depth
        yield paused

        workers = GaugeMetricFamily("rmab_live_workers", "Live worker processes per group (and the configured "
                                    "number).", labels=["group", "kind"])
        for group in sorted(set(live) | set(self.worker_counts)):
            workers.add_metric([group, "live"], live.get(group, 0))
            workers.add_metric([group, "configured"], self.worker_counts.get(group, 0))
        yield workers

        rows = GaugeMetricFamily("rmab_jobs", "Jobs in the database by type and status.",
                                 labels=["type", "status"])
        for job_type, status, count in (Job.select(Job.type, Job.status, fn.COUNT(Job.id))
                                        .group_by(Job.type, Job.status).tuples()):
            rows.add_metric([job_type, status], count)
        yield rows


@bp.get("/metrics")
@api_admin_required
def metrics() -> Response:
    settings = current_app.config["SETTINGS"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobSystemCollector(get_redis(settings.redis_url), settings.worker_counts))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

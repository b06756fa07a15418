"""GET /metrics: Prometheus text format (admin session or bearer token, like every admin route)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app
from peewee import fn

from app.auth import api_admin_required
from app.dashboard.queues import queue_stats
from app.jobs.queues import get_redis
from app.models import Job, JobStatus

bp = Blueprint("metrics", __name__)
BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@bp.get("/metrics")
@api_admin_required
def metrics() -> Response:
    from app.web.health import live_workers_by_group

    settings = current_app.config["SETTINGS"]
    lines = ["# HELP rmab_jobs Jobs in the database by type and status.", "# TYPE rmab_jobs gauge"]
    for job_type, status, count in (Job.select(Job.type, Job.status, fn.COUNT(Job.id)).group_by(Job.type, Job.status)
                                    .tuples()):
        lines.append(f'rmab_jobs{{type="{_escape(job_type)}",status="{_escape(status)}"}} {count}')
    lines += ["# HELP rmab_job_failures_total Jobs that failed (all attempts spent).",
              "# TYPE rmab_job_failures_total counter"]
    for job_type, count in (Job.select(Job.type, fn.COUNT(Job.id)).where(Job.status == JobStatus.FAILED.value)
                            .group_by(Job.type).tuples()):
        lines.append(f'rmab_job_failures_total{{type="{_escape(job_type)}"}} {count}')
    connection = get_redis(settings.redis_url)
    lines += ["# HELP rmab_queue_depth Jobs waiting, active, delayed and failed in Redis per job type.",
              "# TYPE rmab_queue_depth gauge"]
    for row in queue_stats(connection, dict(live_workers_by_group(connection)), settings.worker_counts):
        for state in ("waiting", "active", "delayed", "failed"):
            lines.append(f'rmab_queue_depth{{type="{row["type"]}",state="{state}"}} {row[state]}')
    lines += ["# HELP rmab_job_duration_seconds Run time of completed jobs.", "# TYPE rmab_job_duration_seconds histogram"]
    durations: dict[str, list[float]] = {}
    recent = (Job.select(Job.type, Job.started_at, Job.completed_at)
              .where((Job.status == JobStatus.COMPLETED.value) & Job.started_at.is_null(False))
              .order_by(Job.completed_at.desc()).limit(10000).tuples())
    for job_type, started, completed in recent:
        durations.setdefault(job_type, []).append(max((completed - started).total_seconds(), 0.0))
    for job_type, values in sorted(durations.items()):
        label = _escape(job_type)
        for bucket in BUCKETS:
            lines.append(f'rmab_job_duration_seconds_bucket{{type="{label}",le="{bucket}"}} '
                         f'{sum(1 for v in values if v <= bucket)}')
        lines.append(f'rmab_job_duration_seconds_bucket{{type="{label}",le="+Inf"}} {len(values)}')
        lines.append(f'rmab_job_duration_seconds_sum{{type="{label}"}} {sum(values):.3f}')
        lines.append(f'rmab_job_duration_seconds_count{{type="{label}"}} {len(values)}')
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")

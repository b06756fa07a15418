"""GET /healthz: Redis and the database reachable, live workers per group against the configured count, late
schedules, and the job types an admin paused (`pausedQueues`: shown, not a fault; their schedules are not late)."""
from __future__ import annotations

from collections import Counter

from flask import Blueprint, current_app, jsonify

from app.jobs import types
from app.reports.workers import live_workers_by_group

bp = Blueprint("health", __name__)


def health_report() -> tuple[dict, int]:
    from app.db import database
    from app.redis_connection import get_redis

    settings = current_app.config["SETTINGS"]
    report: dict = {"redis": "ok", "database": "ok"}
    redis_ok = db_ok = True
    connection = get_redis(settings.redis_url)
    try:
        connection.ping()
    except Exception as exc:
        redis_ok = False
        report["redis"] = f"error: {type(exc).__name__}"
    try:
        database.obj.execute_sql("SELECT 1")
    except Exception as exc:
        db_ok = False
        report["database"] = f"error: {type(exc).__name__}"
    workers: dict = {}
    live: Counter = Counter()
    if redis_ok:
        live = live_workers_by_group(connection)
        for group in types.groups():
            configured = settings.worker_counts.get(group, 1)
            workers[group] = {"live": live.get(group, 0), "configured": configured}
    report["workers"] = workers
    short = [g for g, w in workers.items() if w["live"] < w["configured"]]
    late: list[dict] = []
    if redis_ok and db_ok:
        from app.models import ScheduledJob
        from app.schedules.service import SCHEDULER_HEARTBEAT_KEY, schedule_report

        scheduler_alive = bool(connection.exists(SCHEDULER_HEARTBEAT_KEY))
        report["scheduler"] = "ok" if scheduler_alive else "not running"
        from app.jobs.pausing import paused_types

        paused = paused_types()
        report["pausedQueues"] = sorted(paused)
        rows = list(ScheduledJob.select().where(ScheduledJob.enabled == True))  # noqa: E712
        late = [{"name": s["name"], "reason": s["lateReason"]}
                for s in schedule_report(rows, dict(live), scheduler_alive, paused=paused) if s["late"]]
        if late:
            report["lateSchedules"] = late
    healthy = redis_ok and db_ok
    report["status"] = "ok" if healthy and not short and not late else ("degraded" if healthy else "down")
    if short:
        report["missingWorkers"] = short
    return report, (200 if redis_ok and db_ok else 503)


@bp.get("/healthz")
def healthz():
    report, code = health_report()
    return jsonify(report), code

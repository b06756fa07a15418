"""JSON API for admins."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from app.auth.guards import acting_admin, api_admin_required
from app.jobs import pausing, stopping, types
from app.jobs import service as jobs_service
from app.jobs.queues import get_redis
from app.jobs.service import get_job, job_to_dict
from app.models import ScheduledJob
from app.reports import logs as logs_query
from app.reports.pagination import pagination
from app.reports.queue_stats import queue_stats, requeue_message
from app.reports.workers import live_workers, live_workers_by_group
from app.schedules import service as schedules
from app.validation import parse_uuid
from app.web.errors import json_body

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/admin/job-status/<job_id>")
@api_admin_required
def job_status(job_id: str):
    job = get_job(job_id)
    if job is None:
        return jsonify(success=False, error="Job not found"), 404
    return jsonify(success=True, job=job_to_dict(job))


def _schedule_status_inputs() -> tuple[dict, bool]:
    connection = get_redis(current_app.config["SETTINGS"].redis_url)
    return dict(live_workers_by_group(connection)), bool(connection.exists(schedules.SCHEDULER_HEARTBEAT_KEY))


@bp.get("/admin/jobs")
@api_admin_required
def list_schedules():
    live, scheduler_alive = _schedule_status_inputs()
    rows = list(ScheduledJob.select().order_by(ScheduledJob.name))
    return jsonify(jobs=schedules.schedule_report(rows, live, scheduler_alive), schedulerAlive=scheduler_alive)


@bp.post("/admin/jobs/<schedule_id>/trigger")
@api_admin_required
def trigger_schedule(schedule_id: str):
    if parse_uuid(schedule_id) is None:  # the API takes ids; names are for the CLI
        return jsonify(success=False, error=f"no scheduled job {schedule_id!r}"), 404
    # ScheduleError and JobSystemError become their JSON answer in app/web/errors.py
    row = schedules.find_schedule(schedule_id)
    job_id = schedules.trigger_job_now(str(row.id))
    return jsonify(success=True, jobId=job_id, message=f"{row.name} started; poll /api/admin/job-status/{job_id}")


@bp.post("/admin/job-retry/<job_id>")
@api_admin_required
def retry_job(job_id: str):
    """Retry a failed job once (409 with `retryJobId` when it was retried already; 503 when Redis refused the
    new run, 409 when add_job refused it: app/web/errors.py)."""
    new_id = jobs_service.retry_job(job_id)
    return jsonify(success=True, jobId=new_id, message=f"retry started; poll /api/admin/job-status/{new_id}")


@bp.post("/admin/requeue-failed/<job_type>")
@api_admin_required
def requeue_failed(job_type: str):
    """Retry every failed job of a type not yet retried (the queues page's number), each once."""
    if types.get(job_type) is None:
        return jsonify(success=False, error=f"unknown job type {job_type!r}"), 404
    outcome = jobs_service.requeue_failed(job_type)
    return jsonify(success=outcome.stopped is None, requeued=len(outcome.started), jobIds=outcome.started,
                   refused=[{"jobId": job_id, "error": reason} for job_id, reason in outcome.refused],
                   stopped=outcome.stopped, message=requeue_message(job_type, outcome))


@bp.get("/admin/queues")
@api_admin_required
def list_queues():
    """Each job type's queue (counts, workers, `paused`) and each live worker with the job it runs."""
    settings = current_app.config["SETTINGS"]
    connection = get_redis(settings.redis_url)
    live = dict(live_workers_by_group(connection))
    return jsonify(success=True, queues=queue_stats(connection, live, settings.worker_counts),
                   workers=live_workers(connection))


@bp.post("/admin/queues/<job_type>/<action>")
@api_admin_required
def pause_or_resume_queue(job_type: str, action: str):
    """Pause (workers skip the type's queues; a running job finishes) or Resume a job type; 404 for an unknown
    type or action. `changed`: false when it already was paused / was not paused."""
    connection = get_redis(current_app.config["SETTINGS"].redis_url)
    if action == "pause":
        changed = pausing.pause(job_type, acting_admin(), connection)
    elif action == "resume":
        changed = pausing.resume(job_type, connection)
    else:
        return jsonify(success=False, error=f"unknown queue action {action!r}; use pause or resume"), 404
    return jsonify(success=True, type=job_type, paused=action == "pause", changed=changed,
                   pausedTypes=sorted(pausing.paused_types()))


@bp.post("/admin/job-stop/<job_id>")
@api_admin_required
def stop_job(job_id: str):
    """Stop an active job (409 when it is not active, 404 unknown): cancelled at once, its run fenced off."""
    outcome = stopping.stop_job(job_id, acting_admin(), get_redis(current_app.config["SETTINGS"].redis_url))
    return jsonify(success=True, **outcome)


@bp.put("/admin/jobs/<schedule_id>")
@api_admin_required
def update_schedule(schedule_id: str):
    if parse_uuid(schedule_id) is None:
        return jsonify(success=False, error=f"no scheduled job {schedule_id!r}"), 404
    row = schedules.update_schedule(schedule_id, json_body())
    live, scheduler_alive = _schedule_status_inputs()
    return jsonify(success=True, job=schedules.schedule_report([row], live, scheduler_alive)[0])


@bp.get("/admin/logs")
@api_admin_required
def logs():
    filters = logs_query.parse_filter(request.args)  # LogsQueryError: 400 (app/web/errors.py)
    jobs, has_next = logs_query.search_jobs(filters)
    related = logs_query.related_items(jobs)
    events = logs_query.events_for([j.id for j in jobs]) if request.args.get("events") == "1" else {}
    items = []
    for job in jobs:
        item = {**job_to_dict(job), "durationSeconds": logs_query.duration_seconds(job),
                "item": related.get(str(job.request_id)) if job.request_id else None}
        if events:
            item["events"] = [{"level": e.level, "context": e.context, "message": e.message, "metadata": e.metadata,
                               "createdAt": e.created_at.isoformat() + "Z"} for e in events.get(str(job.id), [])]
        items.append(item)
    return jsonify(success=True, jobs=items, pagination=pagination(filters.page, filters.per_page, has_next))

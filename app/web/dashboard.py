"""Admin pages: logs, job detail, scheduled jobs, queues (the requests pages: app/web/request_pages.py). Every
action is a POST form with CSRF."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from app.auth.guards import acting_admin, page_admin_required
from app.jobs import pausing, stopping, types
from app.jobs import service as jobs_service
from app.jobs.errors import JobSystemError
from app.jobs.queues import get_redis
from app.jobs.service import JobActionError, cancel_job, get_job, retry_job
from app.models import Job, JobStatus, ScheduledJob, status_values
from app.reports import logs as logs_query
from app.reports.durations import human as human_duration
from app.reports.job_runs import durations_for
from app.reports.pagination import page_count
from app.reports.queue_stats import queue_stats, requeue_message, requeueable_failed_counts
from app.reports.workers import live_workers, live_workers_by_group
from app.schedules import service as schedules

bp = Blueprint("dashboard", __name__, url_prefix="/admin")


def _live_workers() -> dict[str, int]:
    return dict(live_workers_by_group(get_redis(current_app.config["SETTINGS"].redis_url)))


@bp.app_template_global("job_terminal_statuses")
def _job_terminal_statuses() -> str:
    """The statuses a job ends in, space-separated (app.js stops following a job there)."""
    return " ".join(status_values(JobStatus.TERMINAL))


@bp.app_template_filter("title_case")
def _title_case(value: str) -> str:
    return logs_query.title_case(value)


@bp.app_template_filter("pretty_json")
def _pretty_json(value: object) -> str:
    """Readable JSON for <pre> blocks; Jinja's autoescaping then makes it safe HTML text. Redacted again
    when shown, so rows stored before a redaction rule existed show no secret either."""
    import json

    from app.jobs.redact import redact

    value = redact(value, current_app.config["SETTINGS"].secret_values())
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@bp.app_template_filter("duration")
def _duration(job: Job) -> str:
    """The latest run's duration (templates/admin/_durations.html adds the whole job's)."""
    return human_duration(logs_query.duration_seconds(job))


bp.add_app_template_filter(human_duration, "seconds")


# --- logs -------------------------------------------------------------------------------------------

@bp.get("/logs")
@page_admin_required
def logs():
    try:
        filters = logs_query.parse_filter(request.args)
    except logs_query.LogsQueryError as exc:
        flash(str(exc))
        filters = logs_query.LogsFilter()
    jobs, has_next = logs_query.search_jobs(filters)
    total = logs_query.count_jobs(filters)
    context = dict(jobs=jobs, has_next=has_next, f=filters, related=logs_query.related_items(jobs),
                   total=total, pages=page_count(total, filters.per_page), durations=durations_for(jobs),
                   statuses=[s.value for s in JobStatus], types=[t.name for t in types.all_types()],
                   levels=logs_query.EVENT_LEVELS, sizes=logs_query.PAGE_SIZES)
    template = "admin/_log_rows.html" if request.args.get("partial") else "admin/logs.html"
    return render_template(template, **context)


@bp.get("/jobs")
@page_admin_required
def jobs():
    """The job history lives on the logs page (kept for old links). Only the logs filters are passed on:
    url_for reads some names itself (endpoint, _method, _external, _anchor...), so forwarding any
    query arg let a visitor pick the redirect's target or crash it."""
    filters: dict[str, Any] = {k: v for k, v in request.args.items() if k in logs_query.FILTER_ARGS}
    return redirect(url_for("dashboard.logs", **filters))


def _job_with_events(job_id: str):
    """The job and its events, or 404."""
    job = get_job(job_id)
    if job is None:
        abort(404)
    return job, logs_query.events_for([job.id]).get(str(job.id), [])


@bp.get("/logs/<job_id>/details")
@page_admin_required
def log_details(job_id: str):
    job, events = _job_with_events(job_id)
    return render_template("admin/_job_details.html", job=job, events=events)


# --- one job ----------------------------------------------------------------------------------------

@bp.get("/jobs/<job_id>")
@page_admin_required
def job_detail(job_id: str):
    job, events = _job_with_events(job_id)
    template = "admin/_job_details.html" if request.args.get("partial") else "admin/job_detail.html"
    return render_template(template, job=job, events=events, related=logs_query.related_items([job]),
                           durations=durations_for([job]))


@bp.post("/jobs/<job_id>/retry")
@page_admin_required
def job_retry(job_id: str):
    try:
        new_id = retry_job(job_id)
    except JobActionError as exc:
        if exc.status == 404:
            abort(404)
        flash(f"Not retried: {exc}")
        return redirect(url_for("dashboard.job_detail", job_id=job_id))
    except JobSystemError as exc:
        flash(f"Not retried: {exc}")
        return redirect(url_for("dashboard.job_detail", job_id=job_id))
    flash("Retry started as a new run.")
    return redirect(url_for("dashboard.job_detail", job_id=new_id))


@bp.post("/jobs/<job_id>/cancel")
@page_admin_required
def job_cancel(job_id: str):
    try:
        cancel_job(job_id)
        flash("Job cancelled.")
    except JobActionError as exc:
        flash(f"Not cancelled: {exc}")
    return redirect(url_for("dashboard.job_detail", job_id=job_id))


# --- scheduled jobs ---------------------------------------------------------------------------------

@bp.get("/scheduled")
@page_admin_required
def scheduled():
    live = _live_workers()
    alive = bool(get_redis().exists(schedules.SCHEDULER_HEARTBEAT_KEY))
    rows = list(ScheduledJob.select().order_by(ScheduledJob.name))
    started = get_job(request.args.get("started")) if request.args.get("started") else None
    return render_template("admin/scheduled.html", schedules=schedules.schedule_report(rows, live, alive),
                           scheduler_alive=alive, started=started)


@bp.post("/scheduled/<schedule_id>/trigger")
@page_admin_required
def scheduled_trigger(schedule_id: str):
    try:
        job_id = schedules.trigger_job_now(schedule_id)
    except (schedules.ScheduleError, JobSystemError) as exc:
        flash(f"Not started: {exc}")
        return redirect(url_for("dashboard.scheduled"))
    return redirect(url_for("dashboard.scheduled", started=job_id))


@bp.post("/scheduled/<schedule_id>")
@page_admin_required
def scheduled_update(schedule_id: str):
    body: dict = {"schedule": request.form.get("schedule", ""), "enabled": request.form.get("enabled") == "on"}
    if request.form.get("name"):
        body["name"] = request.form["name"]
    try:
        row = schedules.update_schedule(schedule_id, body)
        flash(f"Saved {row.name}.")
    except schedules.ScheduleError as exc:
        flash(f"Not saved: {exc}")
    return redirect(url_for("dashboard.scheduled"))


# --- queues -----------------------------------------------------------------------------------------

@bp.get("/queues")
@page_admin_required
def queues():
    settings = current_app.config["SETTINGS"]
    rows = queue_stats(get_redis(settings.redis_url), _live_workers(), settings.worker_counts)
    requeueable = requeueable_failed_counts()
    for row in rows:
        row["requeueable"] = requeueable.get(row["type"], 0)
    return render_template("admin/queues.html", rows=rows, workers=live_workers(get_redis(settings.redis_url)))


@bp.post("/queues/<job_type>/<action>")
@page_admin_required
def queue_pause_or_resume(job_type: str, action: str):
    if types.get(job_type) is None or action not in ("pause", "resume"):
        abort(404)
    connection = get_redis(current_app.config["SETTINGS"].redis_url)
    if action == "pause":
        pausing.pause(job_type, acting_admin(), connection)
        flash(f"Paused {job_type}: its workers take no new job (a running one finishes).")
    else:
        pausing.resume(job_type, connection)
        flash(f"Resumed {job_type}.")
    return redirect(url_for("dashboard.queues"))


@bp.post("/jobs/<job_id>/stop")
@page_admin_required
def job_stop(job_id: str):
    try:
        stopping.stop_job(job_id, acting_admin(), get_redis(current_app.config["SETTINGS"].redis_url))
        flash("Job stopped: it is cancelled, and its worker ends the run at its next checkpoint.")
    except JobActionError as exc:
        if exc.status == 404:
            abort(404)
        flash(f"Not stopped: {exc}")
    target = request.form.get("next")
    if target == "queues":
        return redirect(url_for("dashboard.queues"))
    return redirect(url_for("dashboard.job_detail", job_id=job_id))


@bp.post("/queues/<job_type>/requeue-failed")
@page_admin_required
def requeue_failed(job_type: str):
    if types.get(job_type) is None:
        abort(404)
    flash(requeue_message(job_type, jobs_service.requeue_failed(job_type)))
    return redirect(url_for("dashboard.queues"))

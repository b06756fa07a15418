"""The job system's tables: jobs, their events, schedules and paused queues."""
from __future__ import annotations

import peewee

from app.db import JSONField, database
from app.models.base import BaseModel, utcnow
from app.models.requests import Request
from app.statuses import JobStatus, status_values


class Job(BaseModel):
    request = peewee.ForeignKeyField(Request, column_name="request_id", null=True, backref="jobs",
                                     on_delete="SET NULL")
    rq_job_id = peewee.CharField(null=True, unique=True)
    # indexed by (type, status, created_at) and (status, heartbeat_at), and partially (migration 7)
    type = peewee.CharField()
    status = peewee.CharField(default=JobStatus.PENDING.value)
    priority = peewee.IntegerField(default=0)
    attempts = peewee.IntegerField(default=0)
    max_attempts = peewee.IntegerField(default=3)
    payload = JSONField(null=True)
    result = JSONField(null=True)
    error_message = peewee.TextField(null=True)
    stack_trace = peewee.TextField(null=True)
    scheduled_job_id = peewee.UUIDField(null=True, index=True)
    polls = peewee.IntegerField(default=0)          # reschedules of a polling job (monitor_download)
    polling = peewee.BooleanField(default=False)    # waiting for its next poll: the next run is no new attempt
    run_at = peewee.DateTimeField(null=True)
    started_at = peewee.DateTimeField(null=True)
    completed_at = peewee.DateTimeField(null=True)
    # Fencing: each run writes a fresh token when it starts; every later write of that run requires it,
    # so a run that lost its lease (paused, partitioned) never writes after its successor.
    run_token = peewee.CharField(null=True)
    # The run's lease in the record of truth (renewed by the worker's heartbeat): survives a Redis loss.
    heartbeat_at = peewee.DateTimeField(null=True)
    # A failed row retried by an admin (or "requeue failed") points at the new run; claimed once.
    retried_at = peewee.DateTimeField(null=True)
    retry_job_id = peewee.UUIDField(null=True)

    class Meta:
        table_name = "jobs"
        indexes = ((("created_at",), False), (("type", "status", "created_at"), False))

    @property
    def is_terminal(self) -> bool:
        return self.status in JobStatus.TERMINAL

    @property
    def can_retry(self) -> bool:
        """An admin's retry applies: the row failed and was not retried yet (each starts one new run)."""
        return self.status in JobStatus.RETRYABLE and self.retried_at is None

    @classmethod
    def retryable(cls) -> peewee.Expression:
        """`can_retry` as a WHERE clause."""
        return cls.status.in_(status_values(JobStatus.RETRYABLE)) & cls.retried_at.is_null()

    @property
    def can_cancel(self) -> bool:
        """An admin's cancel applies: the run has not started."""
        return self.status in JobStatus.CANCELLABLE


class JobEvent(BaseModel):
    job = peewee.ForeignKeyField(Job, column_name="job_id", backref="events", on_delete="CASCADE", index=True)
    level = peewee.CharField()
    context = peewee.CharField()
    message = peewee.TextField()
    metadata = JSONField(null=True)

    class Meta:
        table_name = "job_events"
        indexes = ((("created_at",), False), (("level", "created_at"), False))


class ScheduledJob(BaseModel):
    name = peewee.CharField()
    type = peewee.CharField(index=True)
    schedule = peewee.CharField()
    enabled = peewee.BooleanField(default=True, index=True)
    payload = JSONField(default=dict)
    last_run = peewee.DateTimeField(null=True)
    last_run_job_id = peewee.UUIDField(null=True)
    next_run = peewee.DateTimeField(null=True)
    # Who last set `enabled`: "admin" (the API or the page) or "system" (the defaults, following the
    # configuration); NULL on rows from before migration 6. An admin's choice is never overridden.
    enabled_changed_by = peewee.CharField(null=True)

    class Meta:
        table_name = "scheduled_jobs"


class PausedQueue(peewee.Model):
    """A job type whose queues workers skip (migration 15). The record of truth for Pause/Resume; Redis holds a
    mirror the workers read in their dequeue (app/jobs/pausing.py). Written only by app/jobs/pausing.py."""

    job_type = peewee.CharField(primary_key=True)
    paused_by = peewee.CharField()
    paused_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "paused_queues"

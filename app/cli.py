"""`flask --app app ...` commands: init-db, enqueue, trigger, job-status, unlock-login."""
from __future__ import annotations

import json

import click
from flask import Flask

from app.jobs.errors import JobSystemError
from app.jobs.types import Priority

MAX_DELAY_SECONDS = 366 * 24 * 3600  # a year (and a day): far below where datetime arithmetic overflows


class DelaySeconds(click.ParamType):
    """A finite number of seconds from 0 to MAX_DELAY_SECONDS; anything else is a usage error (exit 2)."""

    name = "seconds"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)  # type: ignore[arg-type]  # any object: float() decides
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not 0 <= seconds <= MAX_DELAY_SECONDS:  # also false for nan
            self.fail(f"{value!r} must be a number of seconds from 0 to {MAX_DELAY_SECONDS} (a year)", param, ctx)
        return seconds


def register_cli(flask_app: Flask) -> None:
    @flask_app.cli.command("init-db")
    def init_db() -> None:
        """Create or upgrade the database schema (safe to run again)."""
        from app.config import get_settings
        from app.migrations import migrate
        from app.schedules.defaults import ensure_default_schedules

        applied = migrate()
        click.echo("Applied migrations: " + ", ".join(applied) if applied else "Schema is up to date.")
        created = ensure_default_schedules(get_settings())
        if created:
            click.echo("Created default schedules: " + ", ".join(created))

    @flask_app.cli.command("enqueue")
    @click.argument("job_type")
    @click.option("--payload", default="{}", help="JSON object")
    @click.option("--priority", type=click.Choice(["high", "medium", "low"]), default=None)
    @click.option("--delay", type=DelaySeconds(), default=None,
                  help="seconds before the job may start (at most a year)")
    def enqueue(job_type: str, payload: str, priority: str | None, delay: float | None) -> None:
        """Add a job through the job service; prints the new job id."""
        from app.jobs.service import add_job

        try:
            body = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--payload") from None
        try:
            job_id = add_job(job_type, body, priority=Priority.parse(priority) if priority else None, delay=delay)
        except (JobSystemError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(job_id)

    @flask_app.cli.command("trigger")
    @click.argument("schedule")
    def trigger(schedule: str) -> None:
        """Run a scheduled job now (by name, type or id); prints the new job id."""
        from app.schedules.service import ScheduleError, trigger_job_now

        try:
            click.echo(trigger_job_now(schedule))
        except (ScheduleError, JobSystemError) as exc:
            raise click.ClickException(str(exc)) from None

    @flask_app.cli.command("job-status")
    @click.argument("job_id")
    def job_status(job_id: str) -> None:
        """Print one job as JSON."""
        from app.jobs.service import get_job, job_to_dict

        job = get_job(job_id)
        if job is None:
            raise click.ClickException(f"job {job_id!r} not found")
        click.echo(json.dumps(job_to_dict(job), indent=2))

    @flask_app.cli.command("unlock-login")
    @click.option("--username", default=None, help="clear only this username's wait")
    @click.option("--address", default=None, help="clear only this client address's block (an IPv6 one: its /64)")
    def unlock_login(username: str | None, address: str | None) -> None:
        """Clear the login throttle in Redis: every counter (addresses, usernames, known devices), or only
        those named. (While Redis is down, each web process throttles in memory: restart it to clear that.)"""
        from redis.exceptions import RedisError

        from app.auth import client_key, redis_throttle, username_key
        from app.config import get_settings

        try:
            removed = redis_throttle(get_settings().redis_url).unlock(
                username_key(username) if username is not None else None,
                client_key(address) if address is not None else None)
        except (RedisError, OSError) as exc:
            raise click.ClickException(f"Redis is not reachable ({type(exc).__name__}); nothing was cleared") from None
        click.echo(f"Login throttle cleared ({removed} counter(s) removed).")

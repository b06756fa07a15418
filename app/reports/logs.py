"""The logs query behind /admin/logs and GET /api/admin/logs: filters, pagination, no N+1.

Filters (all optional, all in the URL): status, type, level (jobs that logged an event of that level),
since/until (ISO dates), q (text in event messages, audiobook titles and error messages), errors
(failed or stuck jobs, or jobs with an error event), page, per_page (25/50/100).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from app.errors import AppError
from app.jobs.logger import EVENT_LEVELS
from app.models import Audiobook, Job, JobEvent, JobStatus, Request, status_values
from app.reports.pagination import PAGE_SIZES as PAGE_SIZES  # the logs page's size choices
from app.reports.pagination import PageError, fetch_page, parse_page
from app.validation import text_problem

# The query args that are filters: the only ones passed on to links (and by the old /admin/jobs URL).
FILTER_ARGS = ("status", "type", "level", "since", "until", "q", "errors", "page", "per_page")


class LogsQueryError(AppError, ValueError):
    """A filter value that cannot be used (400); the message names it."""


@dataclass(frozen=True)
class LogsFilter:
    """The filters as given. `until` is the moment or day given; `until_whole_day` says a date was given,
    which means "through the end of that day" (see `until_bound`)."""
    status: str = ""
    type: str = ""
    level: str = ""
    since: datetime | None = None
    until: datetime | None = None
    until_whole_day: bool = False
    q: str = ""
    errors: bool = False
    page: int = 1
    per_page: int = 25

    @property
    def until_bound(self) -> datetime | None:
        """The exclusive upper bound of created_at (parse_filter checked that it exists)."""
        if self.until is None:
            return None
        return self.until + timedelta(days=1) if self.until_whole_day else self.until

    def as_args(self) -> dict[str, Any]:
        """The filters as URL args that parse_filter turns back into this same filter (page excepted)."""
        args = {"status": self.status, "type": self.type, "level": self.level, "q": self.q,
                "since": _date_arg(self.since, self.since is not None and self.since.time() == time()),
                "until": _date_arg(self.until, self.until_whole_day),
                "errors": "1" if self.errors else "", "per_page": self.per_page}
        return {k: v for k, v in args.items() if v not in ("", None)}


def _date_arg(value: datetime | None, whole_day: bool) -> str:
    if value is None:
        return ""
    return value.date().isoformat() if whole_day else value.isoformat()


def _date(value: str | None, name: str) -> tuple[datetime | None, bool]:
    """(naive UTC datetime, whether a bare date was given) for an ISO date or date-time."""
    if not value:
        return None, False
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise LogsQueryError(f"{name} must be a date like 2026-11-28 (years 0001 to 9999)") from None
    try:
        date.fromisoformat(value)
        return parsed, True
    except ValueError:
        return parsed, False


def _text(args: Any, name: str, limit: int) -> str:
    value = args.get(name) or ""
    problem = text_problem(name, value)
    if problem:
        raise LogsQueryError(problem)
    return value.strip()[:limit]


def _page(args: Any) -> tuple[int, int]:
    try:
        return parse_page(args)
    except PageError as exc:
        raise LogsQueryError(str(exc)) from None


def parse_filter(args: Any) -> LogsFilter:
    status = (args.get("status") or "").strip()
    if status and status not in {s.value for s in JobStatus}:
        raise LogsQueryError(f"unknown status {status!r}")
    level = (args.get("level") or "").strip()
    if level and level not in EVENT_LEVELS:
        raise LogsQueryError(f"level must be one of {', '.join(EVENT_LEVELS)}")
    page, per_page = _page(args)
    since, _ = _date(args.get("since"), "since")
    until, until_whole_day = _date(args.get("until"), "until")
    if until_whole_day and until is not None and until.date() == date.max:
        raise LogsQueryError("until must be a date before 9999-12-31")
    return LogsFilter(status=status, type=_text(args, "type", 64), level=level, since=since, until=until,
                      until_whole_day=until_whole_day, q=_text(args, "q", 200),
                      errors=str(args.get("errors") or "").lower() in ("1", "true", "on", "yes"), page=page,
                      per_page=per_page)


def _query(f: LogsFilter):
    query = Job.select()
    if f.status:
        query = query.where(Job.status == f.status)
    if f.type:
        query = query.where(Job.type == f.type)
    if f.since:
        query = query.where(Job.created_at >= f.since)
    if f.until:
        query = query.where(Job.created_at < f.until_bound)
    if f.level:
        query = query.where(Job.id.in_(JobEvent.select(JobEvent.job).where(JobEvent.level == f.level)))
    if f.errors:
        query = query.where(Job.status.in_(status_values(JobStatus.ERRORED))
                            | Job.id.in_(JobEvent.select(JobEvent.job).where(JobEvent.level == "error")))
    if f.q:
        pattern = f"%{f.q.lower()}%"
        from peewee import fn

        in_events = JobEvent.select(JobEvent.job).where(fn.LOWER(JobEvent.message).contains(f.q.lower()))
        in_titles = (Request.select(Request.id).join(Audiobook)
                     .where(fn.LOWER(Audiobook.title).contains(f.q.lower())))
        query = query.where(Job.id.in_(in_events) | Job.request.in_(in_titles)
                            | (fn.LOWER(Job.error_message) ** pattern))
    return query


def search_jobs(f: LogsFilter) -> tuple[list[Job], bool]:
    """One page, newest first; `has_next` from fetching one row more (no COUNT over a long history)."""
    return fetch_page(_query(f).order_by(Job.created_at.desc(), Job.id.desc()), f.page, f.per_page)


def count_jobs(f: LogsFilter) -> int:
    """How many jobs match (the logs page's "page x of y (n jobs)"): one COUNT of the same query, which
    PostgreSQL answers from the jobs indexes (bench/logs_page.py keeps it within the page's goal)."""
    return _query(f).count()


def related_items(jobs: list[Job]) -> dict[str, dict[str, str]]:
    """Audiobook title/author per request id, in one query for the whole page."""
    ids = {job.request_id for job in jobs if job.request_id}
    if not ids:
        return {}
    rows = Request.select(Request.id, Audiobook.title, Audiobook.author).join(Audiobook).where(Request.id.in_(ids))
    return {str(r.id): {"title": r.audiobook.title, "author": r.audiobook.author} for r in rows}


def events_for(job_ids: list[Any]) -> dict[str, list[JobEvent]]:
    grouped: dict[str, list[JobEvent]] = {}
    if not job_ids:
        return grouped
    for event in JobEvent.select().where(JobEvent.job.in_(job_ids)).order_by(JobEvent.created_at, JobEvent.id):
        grouped.setdefault(str(event.job_id), []).append(event)
    return grouped


def duration_seconds(job: Job) -> float | None:
    """The latest run's duration (the whole job's: app/reports/job_runs.py)."""
    if job.started_at and job.completed_at:
        return round((job.completed_at - job.started_at).total_seconds(), 3)
    return None


def title_case(job_type: str) -> str:
    return job_type.replace("_", " ").title()

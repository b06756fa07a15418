"""What the scheduler watches for notifications: integrations going down and back up, schedules turning late.

The state last announced lives in Redis (one hash each), not in the health results: a Test button's result
or a scheduler restart never swallows or repeats a change. Each change is announced once; the decisions
(`integration_changes`, `late_changes`) are pure.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.integrations.health import CheckResult
from app.notifications.events import notify

INTEGRATIONS_KEY = "rmab:notify:integrations"  # integration name -> "up" | "down", as last announced
LATE_KEY = "rmab:notify:late"                  # schedule id -> why it was late, while it is


def integration_changes(announced: dict[str, str], results: Iterable[CheckResult]) -> list[tuple[CheckResult, str]]:
    """(result, "down" | "up") for each configured integration whose state differs from the one announced. An
    integration seen for the first time is announced only when it is down (starting up is no news)."""
    changes = []
    for result in results:
        if not result.configured or result.ok is None:
            continue
        now = "up" if result.ok else "down"
        before = announced.get(result.name)
        if now != before and (before is not None or now == "down"):
            changes.append((result, now))
    return changes


def late_changes(announced: dict[str, str], late: dict[str, str]) -> tuple[list[str], list[str]]:
    """(schedule ids newly late, ids announced late that are on time again)."""
    return [key for key in late if key not in announced], [key for key in announced if key not in late]


def _decoded(raw: dict) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


def announce_integrations(connection: Any, results: Iterable[CheckResult]) -> list[str]:
    """The scheduler's integration checks found `results`: announce what changed; the jobs queued."""
    queued: list[str] = []
    for result, now in integration_changes(_decoded(connection.hgetall(INTEGRATIONS_KEY)), results):
        if now == "down":
            queued += notify("integration_down", f"{result.label} is down", result.error or "the check failed")
        else:
            queued += notify("integration_up", f"{result.label} is back up",
                             f"{result.label} answered the check again" +
                             (f" in {result.latency_ms} ms" if result.latency_ms is not None else ""))
        connection.hset(INTEGRATIONS_KEY, result.name, now)
    return queued


def announce_late_schedules(connection: Any) -> list[str]:
    """Announce each enabled schedule that turned late (app/schedules/service.py late_reason) once, and forget
    those on time again, so that a later delay is announced anew. Run by the scheduler, which is alive."""
    from app.models import ScheduledJob
    from app.reports.workers import live_workers_by_group
    from app.schedules.service import schedule_report

    rows = list(ScheduledJob.select().where(ScheduledJob.enabled == True))  # noqa: E712
    report = schedule_report(rows, dict(live_workers_by_group(connection)), scheduler_alive=True)
    late = {row["id"]: row for row in report if row["late"]}
    newly_late, on_time = late_changes(_decoded(connection.hgetall(LATE_KEY)), {k: "" for k in late})
    queued: list[str] = []
    for key in newly_late:
        row = late[key]
        queued += notify("schedule_late", f"Schedule late: {row['name']}", f"{row['name']} ({row['type']}): "
                                                                           f"{row['lateReason']}")
        connection.hset(LATE_KEY, key, row["lateReason"])
    if on_time:
        connection.hdel(LATE_KEY, *on_time)
    return queued

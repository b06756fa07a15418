"""The system's own health checks, beside the integrations' (app/integrations/health.py): free space on
DOWNLOAD_DIR and MEDIA_DIR, Redis persistence, and job types with queued jobs but no live worker.

This module gathers the facts (disk usage, CONFIG GET, queue lengths, the worker registry, the largest book
in flight) and app/pipeline/health_rules.py judges them. The scheduler runs the checks with the integrations'
(every CHECK_INTERVAL_SECONDS) and the System page runs them on each load; both store the rows in Redis
(RESULTS_KEY, a JSON list with its time), which the banner on every page reads with one GET. Disk space is
measured where the checks run: run the scheduler where the workers' folders are mounted.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from typing import Any

from peewee import fn

from app.integrations.health import RESULTS_TTL_SECONDS, STALE_SECONDS
from app.pipeline import health_rules
from app.pipeline.health_rules import Finding

RESULTS_KEY = "rmab:system:health"


@dataclass(frozen=True)
class Check:
    name: str
    label: str
    finding: Finding

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "level": self.finding.level,
                "message": self.finding.message, "fix": self.finding.fix}


def largest_book_in_flight() -> int:
    """The size of the largest torrent still downloading or waiting for its import (0 when none is known)."""
    from app.models import DownloadHistory, DownloadStatus, status_values

    done = status_values(DownloadStatus.ENDED | {DownloadStatus.SEEDING})
    size = (DownloadHistory.select(fn.MAX(DownloadHistory.torrent_size_bytes))
            .where(DownloadHistory.download_status.not_in(done)).scalar())
    return int(size or 0)


def disk_check(name: str, setting: str, folder: str, largest_book: int) -> Check:
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return Check(name, f"Free space on {setting}", health_rules.missing_folder(setting, folder))
    return Check(name, f"Free space on {setting}",
                 health_rules.disk_space(setting, folder, usage.free, usage.total, largest_book))


def redis_check(connection: Any) -> Check:
    label = "Redis persistence"
    try:
        config = {**connection.config_get("appendonly"), **connection.config_get("save")}
    except Exception as exc:  # noqa: BLE001 - a managed Redis may refuse CONFIG: say so, never crash a page
        return Check("redis_persistence", label, Finding(
            health_rules.WARNING, f"Redis refused CONFIG GET ({type(exc).__name__}): its persistence is unknown",
            "Check that the Redis server writes an append-only file (appendonly yes)"))
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in config.items()}
    return Check("redis_persistence", label, health_rules.redis_persistence(text))


def workers_check(connection: Any) -> Check:
    from app.jobs import types
    from app.jobs.queues import get_queue, queue_names_for_type
    from app.reports.workers import live_workers_by_group

    pipe = connection.pipeline()
    job_types = types.all_types()
    for job_type in job_types:
        for queue in queue_names_for_type(job_type.name):
            pipe.llen(get_queue(queue, connection).key)
    lengths = iter(pipe.execute())
    waiting = {t.name: sum(next(lengths) for _ in queue_names_for_type(t.name)) for t in job_types}
    finding = health_rules.idle_job_types(waiting, {t.name: t.group for t in job_types},
                                          live_workers_by_group(connection))
    return Check("workers", "Workers for queued jobs", finding)


def run_checks(settings, connection) -> list[Check]:
    """Every system check now, in the order the System page lists them."""
    checks = []
    largest = largest_book_in_flight() if settings.download_dir or settings.media_dir else 0
    if settings.download_dir:
        checks.append(disk_check("download_dir_space", "DOWNLOAD_DIR", settings.download_dir, largest))
    if settings.media_dir:
        checks.append(disk_check("media_dir_space", "MEDIA_DIR", settings.media_dir, largest))
    checks.append(redis_check(connection))
    checks.append(workers_check(connection))
    return checks


def store(connection, checks: list[Check], now: float | None = None) -> None:
    body = {"checkedAt": time.time() if now is None else now, "checks": [c.to_dict() for c in checks]}
    connection.set(RESULTS_KEY, json.dumps(body), ex=RESULTS_TTL_SECONDS)


def check_and_store(settings, connection) -> list[dict]:
    checks = run_checks(settings, connection)
    store(connection, checks)
    return [c.to_dict() for c in checks]


def load(connection, now: float | None = None) -> list[dict]:
    """The stored rows (one GET); none when they are missing, stale or unreadable."""
    raw = connection.get(RESULTS_KEY)
    try:
        body = json.loads(raw) if raw else {}
        fresh = (time.time() if now is None else now) - float(body.get("checkedAt", 0)) <= STALE_SECONDS
        return [row for row in body.get("checks", []) if isinstance(row, dict)] if fresh else []
    except (ValueError, TypeError, AttributeError):
        return []


def problems(rows: list[dict]) -> list[dict]:
    """The rows the banner shows: errors first, then warnings."""
    return sorted((r for r in rows if r.get("level") in (health_rules.ERROR, health_rules.WARNING)),
                  key=lambda r: r["level"] != health_rules.ERROR)

"""Peewee models: the record of truth for jobs, their events, schedules and the request pipeline.

Columns follow the original schema (snake_case, UUID ids). The tables live in `requests.py` (the pipeline's),
`jobs.py` (the job system's) and `settings.py` (saved settings, migrations, notification targets); the status
vocabularies in app/statuses.py. Everything is importable from `app.models` as before.
"""
from __future__ import annotations

import peewee

from app.models.base import BaseModel, utcnow
from app.models.jobs import Job, JobEvent, PausedQueue, ScheduledJob
from app.models.requests import Audiobook, BlockedRelease, DownloadHistory, PlexLibrary, Request
from app.models.settings import NotificationTarget, SchemaMigration, SettingsChange, SettingsState, StoredSetting
from app.statuses import TERMINAL_JOB_STATUSES, AudiobookStatus, DownloadStatus, JobStatus, status_values

__all__ = [
    "ALL_MODELS", "SETTINGS_MODELS", "Audiobook", "AudiobookStatus", "BaseModel", "BlockedRelease", "DownloadHistory",
    "DownloadStatus", "Job", "JobEvent", "JobStatus", "NotificationTarget", "PausedQueue", "PlexLibrary", "Request",
    "ScheduledJob", "SchemaMigration", "SettingsChange", "SettingsState", "StoredSetting", "TERMINAL_JOB_STATUSES",
    "status_values", "utcnow",
]

ALL_MODELS: list[type[peewee.Model]] = [
    Audiobook, Request, Job, JobEvent, ScheduledJob, DownloadHistory, PlexLibrary, BlockedRelease, PausedQueue,
    StoredSetting, SettingsState, SettingsChange, NotificationTarget]
SETTINGS_MODELS: list[type[peewee.Model]] = [StoredSetting, SettingsState, SettingsChange]  # migration 13

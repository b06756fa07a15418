"""Settings an admin saved, their history, the schema's migrations and the notification targets."""
from __future__ import annotations

import peewee

from app.db import JSONField, database
from app.models.base import BaseModel, utcnow


class StoredSetting(peewee.Model):
    """An admin's value for one setting of app.config.ADMIN_SETTING_NAMES, as typed (migration 13). Written only
    by app/settings_store.py; the environment still wins over it."""

    key = peewee.CharField(primary_key=True)  # the environment variable's name, e.g. PROWLARR_URL
    value = peewee.TextField()
    updated_at = peewee.DateTimeField(default=utcnow)
    updated_by = peewee.CharField()

    class Meta:
        database = database
        table_name = "settings"


class SettingsState(peewee.Model):
    """One row (id 1): the settings version every process compares with the one it applied (each save adds
    one), and whether the first-run setup (/admin/setup) was finished (migration 13)."""

    id = peewee.IntegerField(primary_key=True)
    version = peewee.IntegerField(default=0)
    setup_finished_at = peewee.DateTimeField(null=True)
    setup_finished_by = peewee.CharField(null=True)

    class Meta:
        database = database
        table_name = "settings_state"


class SettingsChange(BaseModel):
    """The history of settings changes: who, which setting, when, and the new value (never a secret's:
    `shown` says only that it was set or cleared)."""

    changed_by = peewee.CharField()
    name = peewee.CharField()
    shown = peewee.TextField()

    class Meta:
        table_name = "settings_changes"
        indexes = ((("created_at",), False),)


class SchemaMigration(peewee.Model):
    version = peewee.IntegerField(primary_key=True)
    name = peewee.CharField()
    applied_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "schema_migrations"


class NotificationTarget(BaseModel):
    """An Apprise URL and the events it is sent (migration 14; app/notifications/). The URL carries tokens:
    pages and answers show it redacted (app/notifications/targets.py)."""
    url = peewee.TextField()
    events = JSONField(default=list)  # event names (app/notifications/targets.py EVENTS)

    class Meta:
        table_name = "notification_targets"

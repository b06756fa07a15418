"""The base of every model: a UUID id and its timestamps, on the one database (app/db.py)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

import peewee

from app.db import database


def utcnow() -> datetime:
    """Naive UTC timestamp (stored without zone on both backends)."""
    return datetime.now(UTC).replace(tzinfo=None)


class BaseModel(peewee.Model):
    id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        legacy_table_names = False

"""Versioned schema migrations (`flask --app app init-db`).

Each migration runs once, in order, inside a transaction, and is recorded in schema_migrations.
Running the command again applies only what is missing, so it is safe to run on every deploy.
"""
from __future__ import annotations

from typing import Callable

import peewee

from app.db import database
from app.models import ALL_MODELS, SchemaMigration


V1_MODELS = [m for m in ALL_MODELS if m._meta.table_name != "blocked_releases"]


def _v1_initial(db: peewee.Database) -> None:
    # create_tables uses today's models, so later column migrations check before adding.
    db.create_tables(V1_MODELS, safe=True)


def _has_column(db: peewee.Database, table: str, column: str) -> bool:
    return any(c.name == column for c in db.get_columns(table))


def _v3_polling_and_blocklist(db: peewee.Database) -> None:
    from playhouse.migrate import SchemaMigrator, migrate as run

    migrator = SchemaMigrator.from_database(db)
    operations = []
    if not _has_column(db, "jobs", "polls"):
        operations.append(migrator.add_column("jobs", "polls", peewee.IntegerField(default=0)))
    if not _has_column(db, "jobs", "polling"):
        operations.append(migrator.add_column("jobs", "polling", peewee.BooleanField(default=False)))
    if operations:
        run(*operations)
    from app.models import BlockedRelease

    db.create_tables([BlockedRelease], safe=True)


def _v2_unique_schedule_type(db: peewee.Database) -> None:
    # One schedule per job type: default rows can then be inserted with ON CONFLICT DO NOTHING, so two
    # processes starting at once never duplicate them.
    db.execute_sql("CREATE UNIQUE INDEX IF NOT EXISTS scheduled_jobs_type_unique ON scheduled_jobs (type)")


# (version, name, function). Append only; never edit an applied migration.
MIGRATIONS: list[tuple[int, str, Callable[[peewee.Database], None]]] = [
    (1, "initial schema", _v1_initial),
    (2, "one schedule per job type", _v2_unique_schedule_type),
    (3, "job polling columns and release blocklist", _v3_polling_and_blocklist),
]


def applied_versions() -> set[int]:
    db = database.obj
    if not db.table_exists(SchemaMigration._meta.table_name):
        return set()
    return {row.version for row in SchemaMigration.select(SchemaMigration.version)}


def migrate() -> list[str]:
    """Apply pending migrations; returns the names of those applied now."""
    db = database.obj
    db.create_tables([SchemaMigration], safe=True)
    done = applied_versions()
    applied: list[str] = []
    for version, name, func in MIGRATIONS:
        if version in done:
            continue
        with db.atomic():
            func(db)
            SchemaMigration.create(version=version, name=name)
        applied.append(f"{version}: {name}")
    return applied


def schema_is_current() -> bool:
    return applied_versions() >= {version for version, _, _ in MIGRATIONS}

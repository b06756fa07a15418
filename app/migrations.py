"""Versioned schema migrations (`flask --app app init-db`).

Each migration runs once, in order, inside a transaction, and is recorded in schema_migrations.
Running the command again applies only what is missing, so it is safe to run on every deploy.
"""
from __future__ import annotations

from collections.abc import Callable

import peewee

from app.db import database
from app.models import ALL_MODELS, SETTINGS_MODELS, SchemaMigration

V1_MODELS = [m for m in ALL_MODELS
             if m._meta.table_name not in ("blocked_releases", "paused_queues", "notification_targets")
             and m not in SETTINGS_MODELS]


def _v1_initial(db: peewee.Database) -> None:
    # create_tables uses today's models, so later column migrations check before adding.
    db.create_tables(V1_MODELS, safe=True)


def _has_column(db: peewee.Database, table: str, column: str) -> bool:
    return any(c.name == column for c in db.get_columns(table))


def _v3_polling_and_blocklist(db: peewee.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run

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


def _v4_text_search_indexes(db: peewee.Database) -> None:
    """Trigram indexes for the logs page's text search (LIKE '%…%' over a long event history).
    PostgreSQL only; pg_trgm is a trusted extension (PG 13+). Without it the search still works, slower."""
    if not isinstance(db, peewee.PostgresqlDatabase):
        return
    try:
        with db.atomic():
            db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except peewee.DatabaseError as exc:
        import logging

        logging.getLogger(__name__).warning("pg_trgm unavailable (%s); text search will scan", exc)
        return
    for name, table, expression in (("job_events_message_trgm", "job_events", "lower(message)"),
                                     ("audiobooks_title_trgm", "audiobooks", "lower(title)"),
                                     ("jobs_error_trgm", "jobs", "lower(error_message)")):
        db.execute_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({expression} gin_trgm_ops)")


def _v5_fencing_and_leases(db: peewee.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run

    migrator = SchemaMigrator.from_database(db)
    columns = (("run_token", peewee.CharField(null=True)), ("heartbeat_at", peewee.DateTimeField(null=True)),
               ("retried_at", peewee.DateTimeField(null=True)), ("retry_job_id", peewee.UUIDField(null=True)))
    operations = [migrator.add_column("jobs", name, field) for name, field in columns
                  if not _has_column(db, "jobs", name)]
    if operations:
        run(*operations)
    # the lease sweep reads active rows by heartbeat; requests by status and age for the reconciler
    db.execute_sql("CREATE INDEX IF NOT EXISTS jobs_status_heartbeat ON jobs (status, heartbeat_at)")


def _v6_schedule_enabled_changed_by(db: peewee.Database) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run

    if not _has_column(db, "scheduled_jobs", "enabled_changed_by"):
        migrator = SchemaMigrator.from_database(db)
        run(migrator.add_column("scheduled_jobs", "enabled_changed_by", peewee.CharField(null=True)))


def _v7_leaner_job_indexes(db: peewee.Database) -> None:
    """Every run rewrites its jobs row twice (active, then completed), and each such write adds an entry
    to every index of the table: fewer indexes, cheaper runs (bench/throughput.py).
    - jobs_type and jobs_status are prefixes of jobs_type_status_created_at and jobs_status_heartbeat;
    - request_id, scheduled_job_id and error_message are NULL on most rows, and every lookup by them
      implies NOT NULL (equality, LIKE), so partial indexes serve the same queries."""
    for name in ("jobs_type", "jobs_status", "jobs_request_id", "jobs_scheduled_job_id"):
        db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    db.execute_sql("CREATE INDEX IF NOT EXISTS jobs_request_id ON jobs (request_id) WHERE request_id IS NOT NULL")
    db.execute_sql("CREATE INDEX IF NOT EXISTS jobs_scheduled_job_id ON jobs (scheduled_job_id) "
                   "WHERE scheduled_job_id IS NOT NULL")
    if isinstance(db, peewee.PostgresqlDatabase) and db.execute_sql(
            "SELECT 1 FROM pg_indexes WHERE indexname = 'jobs_error_trgm'").fetchone():
        db.execute_sql("DROP INDEX jobs_error_trgm")
        db.execute_sql("CREATE INDEX jobs_error_trgm ON jobs USING gin (lower(error_message) gin_trgm_ops) "
                       "WHERE error_message IS NOT NULL")


def _v8_one_download_status_spelling(db: peewee.Database) -> None:
    """The monitor wrote the client's `complete` to download_status for a moment before `completed` (a run that
    died in between left it): one spelling per status now (DownloadStatus), so such rows say `completed`."""
    db.execute_sql("UPDATE download_history SET download_status = 'completed' WHERE download_status = 'complete'")

def _v9_search_backoff_and_blocklist_indexer(db: peewee.Database) -> None:
    """requests.next_search_at: when an awaiting_search request is searched again (a back-off per request
    instead of one daily search); blocked_releases.indexer: the blocklist page names where a release came from."""
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run

    migrator = SchemaMigrator.from_database(db)
    operations = []
    if not _has_column(db, "requests", "next_search_at"):
        operations.append(migrator.add_column("requests", "next_search_at", peewee.DateTimeField(null=True)))
    if not _has_column(db, "blocked_releases", "indexer"):
        operations.append(migrator.add_column("blocked_releases", "indexer", peewee.CharField(null=True)))
    if operations:
        run(*operations)


OLD_RETRY_MISSING_CRON, RETRY_MISSING_CRON = "0 0 * * *", "*/5 * * * *"


def _v10_fruitless_searches_and_frequent_retry(db: peewee.Database) -> None:
    """requests.fruitless_searches: searches in a row that found nothing usable, which set the back-off of
    the next one (app/pipeline/search_backoff.py). Retry Missing Torrents now runs every 5 minutes and
    searches only the requests that are due: a row still on the old daily default moves to the new cron
    (next_run NULL: the timer starts it from the next tick); a cron an admin set stays."""
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run

    if not _has_column(db, "requests", "fruitless_searches"):
        migrator = SchemaMigrator.from_database(db)
        run(migrator.add_column("requests", "fruitless_searches", peewee.IntegerField(default=0)))
    param = db.param  # ? on SQLite, %s on PostgreSQL
    db.execute_sql(
        f"UPDATE scheduled_jobs SET schedule = {param}, next_run = NULL WHERE type = {param} AND schedule = {param}",
        (RETRY_MISSING_CRON, "retry_missing_torrents", OLD_RETRY_MISSING_CRON),
    )


ACTIVE_BOOK_INDEX = "requests_active_book_key"


def _v12_one_active_request_per_book(db: peewee.Database) -> None:
    """requests.book_key (app/library/book_identity.py) and a unique index over it among active requests:
    two creates of one book at once cannot both succeed. Existing rows get their key; where active requests
    already repeat a book, the oldest keeps it and the others stay NULL (left as they are, outside the index)."""
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run

    from app.audiobook_requests.state import ACTIVE
    from app.library.book_identity import book_key

    # ACTIVE as it is now: when ACTIVE changes, a new migration must rebuild the index (a test compares them)
    active = [status.value for status in ACTIVE]
    if not _has_column(db, "requests", "book_key"):
        run(SchemaMigrator.from_database(db).add_column("requests", "book_key",
                                                        peewee.CharField(max_length=64, null=True)))
    rows = db.execute_sql(
        "SELECT r.id, r.status, a.title, a.author, a.audible_asin FROM requests r "
        "JOIN audiobooks a ON a.id = r.audiobook_id WHERE r.book_key IS NULL ORDER BY r.created_at, r.id").fetchall()
    placeholders = ", ".join([db.param] * len(active))
    taken = {key for (key,) in db.execute_sql(
        f"SELECT book_key FROM requests WHERE book_key IS NOT NULL AND status IN ({placeholders})",
        active).fetchall()}
    for request_id, status, title, author, asin in rows:
        key = book_key(title or "", author or "", asin)
        if status in active:
            if key in taken:
                continue  # an older active request of this book keeps the key
            taken.add(key)
        db.execute_sql(f"UPDATE requests SET book_key = {db.param} WHERE id = {db.param}", (key, request_id))
    db.execute_sql(f"CREATE UNIQUE INDEX IF NOT EXISTS {ACTIVE_BOOK_INDEX} ON requests (book_key) "
                   f"WHERE status IN ({', '.join(repr(status) for status in active)})")


def _v13_settings(db: peewee.Database) -> None:
    """Settings an admin changes in the browser, their version and the first-run setup flag, their history."""
    db.create_tables(SETTINGS_MODELS, safe=True)


def _v14_notification_targets(db: peewee.Database) -> None:
    """notification_targets: the Apprise URLs managed on /admin/notifications, each with its events."""
    from app.models import NotificationTarget

    db.create_tables([NotificationTarget], safe=True)


def _v15_paused_queues(db: peewee.Database) -> None:
    """paused_queues: the job types an admin paused (their workers skip their queues); app/jobs/pausing.py."""
    from app.models import PausedQueue

    db.create_tables([PausedQueue], safe=True)


# (version, name, function). Append only; never edit an applied migration.
MIGRATIONS: list[tuple[int, str, Callable[[peewee.Database], None]]] = [
    (1, "initial schema", _v1_initial),
    (2, "one schedule per job type", _v2_unique_schedule_type),
    (3, "job polling columns and release blocklist", _v3_polling_and_blocklist),
    (4, "text search indexes (PostgreSQL)", _v4_text_search_indexes),
    (5, "run fencing tokens, database leases, retry claims", _v5_fencing_and_leases),
    (6, "who last changed a schedule's enabled flag", _v6_schedule_enabled_changed_by),
    (7, "leaner job indexes", _v7_leaner_job_indexes),
    (8, "one spelling per download status", _v8_one_download_status_spelling),
    (9, "search back-off per request, blocklist indexer", _v9_search_backoff_and_blocklist_indexer),
    (10, "fruitless searches in a row; Retry Missing Torrents every 5 minutes",
     _v10_fruitless_searches_and_frequent_retry),
    # 11: not used (it was set aside for a branch that needed none)
    (12, "one active request per book", _v12_one_active_request_per_book),
    (13, "settings stored in the database, first-run setup", _v13_settings),
    (14, "notification targets", _v14_notification_targets),
    (15, "paused job types", _v15_paused_queues),
    # 16: not used (set aside for a branch that needed none)
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

"""The Peewee database handle, bound once per process to DATABASE_URL.

PostgreSQL is the production database; SQLite under instance/ is the embedded default.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import peewee
from playhouse.db_url import parse as parse_db_url
from playhouse.shortcuts import ReconnectMixin

database = peewee.DatabaseProxy()

_bound_url: str | None = None
_bound_pid: int | None = None


class ReconnectingPostgresqlDatabase(ReconnectMixin, peewee.PostgresqlDatabase):
    """Reconnects once when the server dropped the connection (restart, idle timeout)."""

    reconnect_errors = ReconnectMixin.reconnect_errors + (
        (peewee.InterfaceError, "connection already closed"),
        (peewee.OperationalError, "server closed the connection"),
        (peewee.OperationalError, "terminating connection"),
        (peewee.OperationalError, "SSL connection has been closed"),
    )


class JSONField(peewee.Field):
    """JSON stored as jsonb on PostgreSQL and as text on SQLite."""

    field_type = "JSONFIELD"

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        return json.dumps(value, default=str, allow_nan=False)

    def python_value(self, value: Any) -> Any:
        if value is None or not isinstance(value, (str, bytes)):
            return value  # psycopg2 already decoded jsonb
        return json.loads(value)


def make_database(url: str, synchronous_commit: bool = True) -> peewee.Database:
    """A database object for `url` (sqlite:///path or postgresql://...).

    synchronous_commit=False (PostgreSQL only) lets a commit return before its WAL reaches disk:
    a server crash may lose the last fraction of a second of commits, never corrupts anything.
    Worker processes use it for their bookkeeping writes (setting WORKER_SYNCHRONOUS_COMMIT).
    """
    parsed = parse_db_url(url)
    if url.startswith("sqlite"):
        path = parsed.pop("database")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return peewee.SqliteDatabase(
            path,
            pragmas={"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000},
            field_types={"JSONFIELD": "TEXT"},
        )
    if url.startswith(("postgresql", "postgres")):
        dbname = parsed.pop("database")
        parsed.setdefault("connect_timeout", 5)
        if not synchronous_commit:
            parsed["options"] = (parsed.get("options", "") + " -c synchronous_commit=off").strip()
        return ReconnectingPostgresqlDatabase(
            dbname, field_types={"JSONFIELD": "JSONB"}, **parsed
        )
    raise ValueError(f"unsupported DATABASE_URL scheme: {url.split(':', 1)[0]}")


def bind_database(url: str, synchronous_commit: bool = True) -> peewee.Database:
    """Point the shared proxy at `url` (idempotent for the same arguments in the same process)."""
    global _bound_url, _bound_pid
    key = f"{url}#sync={synchronous_commit}"
    if _bound_url == key and _bound_pid == os.getpid() and database.obj is not None:
        return database.obj
    if database.obj is not None and _bound_pid == os.getpid():
        database.obj.close()
    database.initialize(make_database(url, synchronous_commit))
    _bound_url, _bound_pid = key, os.getpid()
    return database.obj


def ensure_bound() -> peewee.Database:
    """Bind to the configured database if nothing is bound yet (worker and CLI entry points)."""
    if database.obj is None:
        from app.config import get_settings

        bind_database(get_settings().effective_database_url)
    return database.obj


def create_postgres_database_if_missing(url: str) -> bool:
    """CREATE DATABASE for a postgresql:// url when it does not exist (tests, benchmarks, first set-up).

    Returns True when it created one. Connection errors propagate (psycopg2.OperationalError).
    """
    import psycopg2
    from psycopg2 import sql

    params = parse_db_url(url)
    dbname = params.pop("database")
    params.setdefault("connect_timeout", 5)
    conn = psycopg2.connect(dbname="postgres", **params)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone() is not None:
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            return True
    finally:
        conn.close()


def _forget_inherited_connection() -> None:
    # A forked child must never reuse (or close) the parent's socket: drop the state silently.
    if database.obj is not None:
        database.obj._state.reset()


os.register_at_fork(after_in_child=_forget_inherited_connection)

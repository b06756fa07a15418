"""Pre-built SQL names only columns of the Peewee models (the statements are built once as text, so a renamed
column would only fail at run time), and the checker itself fails a statement out of step."""
from __future__ import annotations

import re

import pytest

from app.jobs import held_events, state
from app.jobs import logger as job_logger
from app.models import ALL_MODELS
from workers.processors import scan_plex as library

# --- pre-built SQL against the models ---------------------------------------------------------------------------

_TABLES = {model._meta.table_name: model for model in ALL_MODELS}
_WORDS = {"and", "or", "in", "is", "not", "null", "case", "when", "then", "else", "end", "excluded", "select",
          "from", "where", "exists", "true", "false", "interval"}


def _identifiers(clause: str) -> set[str]:
    """Column names in a SET or WHERE clause: every identifier but keywords, literals and placeholders."""
    clause = re.sub(r"'[^']*'", "", clause).replace("%s", "").replace("?", "")
    clause = re.sub(r"\bexcluded\.\w+", "", clause)  # excluded.col repeats the SET target
    return {word for word in re.findall(r"[A-Za-z_]\w*", clause) if word.lower() not in _WORDS}


def _columns_or_problems(model, names: set[str], where: str) -> list[str]:
    missing = sorted(names - set(model._meta.columns))
    return [f"{model._meta.table_name}: {where} names unknown column(s) {missing}"] if missing else []


def sql_problems(sql: str) -> list[str]:
    """What in `sql` (an INSERT, UPDATE or INSERT … ON CONFLICT of this codebase) the models disagree with:
    a table or column that does not exist, an INSERT that leaves out a NOT NULL column (raw SQL gets none of
    Peewee's Python-side defaults, and the tables have no database defaults), a VALUES row of another length."""
    problems: list[str] = []
    statement = " ".join(sql.split())
    for table, columns in re.findall(r"INSERT INTO (\w+) \(([^)]*)\)", statement):
        model = _TABLES.get(table)
        if model is None:
            return [f"unknown table {table}"]
        names = [c.strip() for c in columns.split(",")]
        problems += _columns_or_problems(model, set(names), "INSERT")
        required = {name for name, field in model._meta.columns.items() if not field.null and not field.constraints}
        if required - set(names):
            problems.append(f"{table}: INSERT leaves out NOT NULL column(s) {sorted(required - set(names))}")
        for row in re.findall(r"VALUES \(([^()]*)\)", statement)[:1]:
            if len(row.split(",")) != len(names):
                problems.append(f"{table}: {len(names)} columns but {len(row.split(','))} values")
    for table, assignments, condition in re.findall(r"UPDATE (\w+) SET (.*?) WHERE (.*?)(?:;|$)", statement):
        model = _TABLES.get(table)
        if model is None:
            return [f"unknown table {table}"]
        problems += _columns_or_problems(model, _identifiers(assignments), "SET")
        problems += _columns_or_problems(model, _identifiers(condition), "WHERE")
    for table, condition in re.findall(r"FROM (\w+) WHERE ([^()]*)", statement):
        model = _TABLES.get(table)
        if model is None:
            return [f"unknown table {table}"]
        problems += _columns_or_problems(model, _identifiers(condition), "WHERE")
    insert = re.search(r"INSERT INTO (\w+)", statement)
    conflict = re.search(r"ON CONFLICT \((\w+)\) DO UPDATE SET (.*)$", statement)
    if insert and conflict:
        model = _TABLES[insert.group(1)]
        targets = set(re.findall(r"(\w+) = excluded\.(\w+)", conflict.group(2)))
        problems += _columns_or_problems(model, {conflict.group(1)} | {t for pair in targets for t in pair},
                                         "ON CONFLICT")
        problems += [f"{a} = excluded.{b}: not the same column" for a, b in targets if a != b]
    if not re.search(r"\b(INSERT INTO|UPDATE)\b", statement):
        problems.append("no INSERT or UPDATE found")
    return problems


PREBUILT = {
    "state._MARK_ACTIVE": state._MARK_ACTIVE.format(p="%s"),
    "state._MARK_COMPLETED": state._MARK_COMPLETED.format(p="%s"),
    "state._RENEW_LEASE": state._RENEW_LEASE.format(p="%s"),
    "state._INSERT_JOB": state._INSERT_JOB.format(p="%s"),
    "logger._INSERT_EVENT": job_logger._INSERT_EVENT.format(p="%s"),
    "state._INSERT_JOB_FENCED_PG": state._INSERT_JOB_FENCED_PG,
    "state._INSERT_JOB_FENCED_SQLITE": state._INSERT_JOB_FENCED_SQLITE.replace("?", "%s"),
    "held_events.fenced_events_sql (PostgreSQL)": held_events.fenced_events_sql(2, postgres=True),
    "held_events.fenced_events_sql (SQLite)": held_events.fenced_events_sql(2, postgres=False),
    "library._upsert_sql": library._upsert_sql(2, "%s"),
}


@pytest.mark.parametrize("name", sorted(PREBUILT))
def test_prebuilt_sql_names_only_model_columns(name):
    assert sql_problems(PREBUILT[name]) == []


@pytest.mark.parametrize("sql, expected", [
    ("UPDATE jobs SET state = %s WHERE id = %s", "SET names unknown column(s) ['state']"),
    ("UPDATE jobs SET status = %s WHERE id = %s AND token = %s", "WHERE names unknown column(s) ['token']"),
    ("INSERT INTO job_events (id, created_at, updated_at, job_id, level, context, msg) VALUES (%s, %s, %s, %s, %s, "
     "%s, %s)", "INSERT names unknown column(s) ['msg']"),
    ("INSERT INTO job_events (id, created_at, updated_at, job_id, level, context) VALUES (%s, %s, %s, %s, %s, %s)",
     "INSERT leaves out NOT NULL column(s) ['message']"),
    ("INSERT INTO jobs (id, created_at, updated_at, type, status, priority, attempts, max_attempts, polls, polling) "
     "VALUES (%s, %s, %s, %s, %s, %s, 0, %s, 0)", "10 columns but 9 values"),
    ("INSERT INTO job_events (id, created_at, updated_at, job_id, level, context, message) SELECT * FROM (SELECT "
     "?, ?, ?, ?, ?, ?, ?) WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ? AND token = ?)",
     "WHERE names unknown column(s) ['token']"),
    ("INSERT INTO plex_library (id, created_at, updated_at, plex_guid, title) VALUES (%s, %s, %s, %s, %s) "
     "ON CONFLICT (plex_guid) DO UPDATE SET titel = excluded.titel", "ON CONFLICT names unknown column(s) ['titel']"),
    ("INSERT INTO plex_libraries (id) VALUES (%s)", "unknown table plex_libraries"),
], ids=["renamed SET column", "renamed WHERE column", "renamed INSERT column", "NOT NULL column left out",
        "values short of columns", "renamed fence column", "renamed upsert column", "renamed table"])
def test_the_sql_check_fails_a_statement_out_of_step(sql, expected):
    assert any(expected in problem for problem in sql_problems(sql)), sql_problems(sql)


def test_the_fenced_event_insert_takes_eight_values_a_row_then_the_fence():
    columns = re.search(r"\(([^)]*)\)", held_events._EVENT_COLUMNS).group(1).split(",")
    for postgres, mark in ((True, "%s"), (False, "?")):
        assert held_events.fenced_events_sql(3, postgres).count(mark) == 3 * len(columns) + 2

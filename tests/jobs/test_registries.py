"""Guards for code that must stay in step with something it cannot import: registries that refuse a name
twice, pre-built SQL against the Peewee models, RQ's Redis key prefixes written out in Lua, and the poll
state monitor_download keeps in job payloads (rows written by older code must read back the same)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rq.executions import ExecutionRegistry
from rq.job import Job as RQJob
from rq.results import get_key as result_key

from app.jobs import logger as job_logger
from app.jobs import recovery, retention, state, types
from app.models import ALL_MODELS
from app.pipeline.monitor_policy import PollOutcome, PollState, decide_poll, reconnect_delay
from workers import processors
from workers.processors import library

# --- registries refuse a name twice ---------------------------------------------------------------------------


def _register_type(name: str) -> None:
    types.register(types.JobType(name, "testing", (), 30))


def _register_processor(name: str) -> None:
    processors.register(name)(lambda payload: None)


@pytest.mark.parametrize("register, registry", [(_register_type, types._REGISTRY),
                                                 (_register_processor, processors._PROCESSORS)],
                         ids=["job types", "processors"])
@pytest.mark.parametrize("name, fresh", [("code_health_dup", True), ("search_indexers", False),
                                         ("organize_files", False)])
def test_a_registry_refuses_a_name_registered_twice(register, registry, name, fresh):
    before = registry.get(name)
    try:
        if fresh:
            register(name)  # the first time is accepted
            assert name in registry
        first = registry[name]
        with pytest.raises(ValueError, match=name):
            register(name)
        assert registry[name] is first  # the first definition stays
    finally:
        if fresh:
            registry.pop(name, None)
    assert registry.get(name) is before


def test_every_job_type_has_one_processor_and_each_name_once():
    assert sorted(t.name for t in types.all_types() if not t.name.startswith("test_")) == \
        sorted(n for n in processors.registered() if not n.startswith("test_"))


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
    "logger.fenced_events_sql (PostgreSQL)": job_logger.fenced_events_sql(2, postgres=True),
    "logger.fenced_events_sql (SQLite)": job_logger.fenced_events_sql(2, postgres=False),
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
    columns = re.search(r"\(([^)]*)\)", job_logger._EVENT_COLUMNS).group(1).split(",")
    for postgres, mark in ((True, "%s"), (False, "?")):
        assert job_logger.fenced_events_sql(3, postgres).count(mark) == 3 * len(columns) + 2


# --- RQ's key prefixes ----------------------------------------------------------------------------------------

def test_rq_key_prefixes_written_out_in_the_retention_script_are_rqs():
    """app/jobs/retention.py's Lua deletes RQ's keys by prefix: an RQ upgrade that renames them fails here."""
    assert RQJob.redis_job_namespace_prefix == "rq:job:"
    assert RQJob.key_for("abc") == "rq:job:abc"
    assert result_key("abc") == "rq:results:abc"
    assert ExecutionRegistry.key_template.format("abc") == "rq:executions:abc"
    for prefix in ("'rq:job:' .. id", "'rq:results:' .. id", "'rq:executions:' .. id"):
        assert prefix in retention._TRIM


def test_recovery_builds_rq_keys_through_rq():
    source = Path(recovery.__file__).read_text()
    assert "rq:job:" not in source and "RQJob.key_for(" in source


# --- monitor_download's poll state ------------------------------------------------------------------------------

_POLL_KEYS = ("stallCount", "connectionFailures", "lastBytes", "lastProgress", "lastLoggedPercent", "motionlessSince")


@pytest.mark.parametrize("payload", [
    {"requestId": "r", "jobId": "j", "downloadHistoryId": "d"},  # the first poll: no state yet
    {"requestId": "r", "jobId": "j", "stallCount": 3, "connectionFailures": 0, "lastBytes": 1024,
     "lastProgress": 0.25, "lastLoggedPercent": 25, "motionlessSince": "2026-03-10T12:00:05.123456",
     "pollDueAt": 1773144000.5},
    {"stallCount": 1, "connectionFailures": 2, "lastBytes": None, "lastProgress": None, "lastLoggedPercent": None,
     "motionlessSince": None},
    {"stallCount": 0, "connectionFailures": 0, "lastBytes": 0, "lastProgress": 0.0, "lastLoggedPercent": 0,
     "motionlessSince": "2026-03-10T12:00:00"},
], ids=["first poll", "a row written by earlier code", "a connection failure", "whole seconds"])
def test_poll_state_round_trips_through_a_payload_with_the_same_keys(payload):
    state_ = PollState.from_payload(payload)
    written = state_.to_payload()
    assert tuple(written) == _POLL_KEYS
    expected = {"stallCount": 0, "connectionFailures": 0, "lastBytes": None, "lastProgress": None,
                "lastLoggedPercent": None, "motionlessSince": None}
    expected.update({key: payload[key] for key in _POLL_KEYS if key in payload})
    assert written == expected
    assert PollState.from_payload({**payload, **written}) == state_


@pytest.mark.parametrize("base", [0.5, 1.0, 10.0, 2.0])
def test_reconnect_delay_doubles_from_the_poll_interval_up_to_thirty_of_them(base):
    assert [reconnect_delay(n, base) for n in range(1, 30)] == [base * min(2 ** (n - 1), 30) for n in range(1, 30)]
    assert reconnect_delay(1) == 10 and reconnect_delay(6) == 300


NOW = datetime(2026, 3, 10, 12, 0, 0)


@pytest.mark.parametrize("previous, downloaded, allowed, percent, expected", [
    # first poll, downloading: the clock starts now, progress is logged, polls come quickly
    (PollState(), 0, True, 0, (PollOutcome.POLL_AGAIN, 0, NOW, 10.0, True, False)),
    # moving: the clock restarts, the back-off resets
    (PollState(stall_count=3, last_bytes=10, last_logged_percent=1, motionless_since=NOW - timedelta(seconds=30)),
     20, True, 2, (PollOutcome.POLL_AGAIN, 0, NOW, 10.0, True, False)),
    # motionless, under the limit: the stretch goes on and polls back off
    (PollState(stall_count=1, last_bytes=10, last_logged_percent=7, motionless_since=NOW - timedelta(seconds=30)),
     10, True, 7, (PollOutcome.POLL_AGAIN, 2, NOW - timedelta(seconds=30), 40.0, False, False)),
    # motionless past the limit (60 s): stalled
    (PollState(stall_count=4, last_bytes=10, last_logged_percent=7, motionless_since=NOW - timedelta(seconds=60)),
     10, True, 7, (PollOutcome.STALLED, 5, NOW - timedelta(seconds=60), 300.0, False, False)),
    # held by the client (paused) right after moving: the clock is held, and that is said once
    (PollState(stall_count=0, last_bytes=10, last_logged_percent=7, motionless_since=NOW - timedelta(seconds=5)),
     10, False, 7, (PollOutcome.POLL_AGAIN, 1, None, 20.0, False, True)),
    # still held, a long time motionless: never stalled, not said again
    (PollState(stall_count=8, last_bytes=10, last_logged_percent=7, motionless_since=None),
     10, False, 7, (PollOutcome.POLL_AGAIN, 9, None, 300.0, False, False)),
    # held on the first poll: said
    (PollState(), 0, False, 0, (PollOutcome.POLL_AGAIN, 1, None, 20.0, True, True)),
])
def test_decide_poll(previous, downloaded, allowed, percent, expected):
    decision = decide_poll(previous, NOW, percent=percent, downloaded=downloaded, progress=percent / 100,
                           allowed=allowed, stall_limit_seconds=60, base_delay=10.0)
    assert (decision.outcome, decision.poll.stall_count, decision.poll.motionless_since, decision.delay,
            decision.log_progress, decision.clock_held) == expected
    assert decision.poll.connection_failures == 0 and decision.poll.last_bytes == downloaded
    assert decision.poll.last_logged_percent == (percent if decision.log_progress else previous.last_logged_percent)

"""The held-events protocol: a run's info events are written with its completion, in the same round trip.

A running job's JobLogger (app/jobs/logger.py) hands each event to `hold`. An info event of a run younger than
HOLD_SECONDS, with fewer than _HOLD_MAX held, stays in `Run.held_events`; anything else (a warning, an error, an
older run) makes the logger write everything held at once (`write_held_events`), fenced (`fenced_events_sql`:
stored only while the run's row is active with its token). So held events are written by whichever comes first:

- the run's next warning or error (the logger);
- the lease thread, once the run is older than HOLD_SECONDS (app/jobs/fence.py `_renew_forever`);
- the run's end, `fence.end` (the one way a run ends): it writes them, or, for the completion, leaves them to
  `take_held_events` so that `state.mark_completed` stores them with the result.

A run that lost its lease (or was stopped) loses them: the process log says how many. `Run.lock` serialises the
writers (the run's thread and the lease thread).
"""
from __future__ import annotations

import logging

from app.db import ensure_bound
from app.jobs.current_run import Run

log = logging.getLogger(__name__)

# A short job costs one statement instead of three. Warnings, errors and every event of a run older than this
# are written at once (with what was held).
HOLD_SECONDS = 0.5
_HOLD_MAX = 20

# A run's own events are fenced like its other writes (app/jobs/fence.py): stored only while the run
# holds its job. INSERT … SELECT needs typed values on PostgreSQL; SQLite takes them as they are.
_EVENT_COLUMNS = "INSERT INTO job_events (id, created_at, updated_at, job_id, level, context, message, metadata) "
_FENCE = "EXISTS (SELECT 1 FROM jobs WHERE id = {p} AND run_token = {p} AND status = 'active')"
_PG_ROW = "(%s, %s::timestamp, %s::timestamp, %s, %s, %s, %s, %s)"
_PG_SELECT = ("SELECT v.id::uuid, v.c, v.u, v.j::uuid, v.l, v.x, v.m, v.d::jsonb FROM (VALUES {rows}) "
              "AS v(id, c, u, j, l, x, m, d) WHERE ")


def fenced_events_sql(count: int, postgres: bool) -> str:
    """INSERT of `count` event rows of a run, refused unless the run still holds its job. Parameters:
    the rows' values (8 each), then the job id and the run's token."""
    if postgres:
        return _EVENT_COLUMNS + _PG_SELECT.format(rows=", ".join([_PG_ROW] * count)) + _FENCE.format(p="%s")
    rows = " UNION ALL ".join(["SELECT ?, ?, ?, ?, ?, ?, ?, ?"] * count)
    return _EVENT_COLUMNS + f"SELECT * FROM ({rows}) WHERE " + _FENCE.format(p="?")


def hold(run: Run, level: str, params: tuple) -> bool:
    """Add one event row (its 8 values) to the run's held events. True when it may stay held; False when the
    caller must write everything held now (`write_held_events`)."""
    with run.lock:
        run.held_events.append(params)
        return level == "info" and len(run.held_events) < _HOLD_MAX and run.age() < HOLD_SECONDS


def take_held_events(run: Run) -> list[tuple]:
    """The run's held events, now the caller's to write (the completion writes them with the result)."""
    with run.lock:  # waits for a write by the lease thread, if one is under way
        events, run.held_events = run.held_events, []
    return events


def write_held_events(run: Run) -> None:
    """Write the events a run holds back (fenced; dropped with a warning when the run lost its lease)."""
    with run.lock:
        held, run.held_events = run.held_events, []
        if not held:
            return
        db = ensure_bound()
        postgres = db.param != "?"
        params = [value for row in held for value in row] + [held[0][3], run.token]
        stored = db.execute_sql(fenced_events_sql(len(held), postgres), params).rowcount
    if stored == 0:
        log.warning("job %s: %d event(s) of a run that lost its lease not stored", run.job_id, len(held))


def flush_at_end(run: Run) -> None:
    """The run ended (`fence.end`): write what it still holds, unless it knows it lost its job (lost its lease,
    or stopped: its token is cleared), whose events would be refused anyway. Never raises: the end of a run
    must not fail because its events could not be stored."""
    if run.lost or run.stopped:
        dropped = take_held_events(run)
        if dropped:
            log.warning("job %s: %d event(s) of a run that lost its job not stored", run.job_id, len(dropped))
        return
    try:
        write_held_events(run)
    except Exception:
        log.exception("job %s: could not store the run's events", run.job_id)

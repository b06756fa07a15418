"""The one way a run ends (fence.end, with its held events), add_job's fence carried in its own insert, and a
final failure reaching the request through the job type's final_failure_hook (a dotted path)."""
from __future__ import annotations

import dataclasses

import pytest

from app.audiobook_requests.state import STEP_STATUS
from app.db import database
from app.jobs import fence, final_failure, state, types
from app.jobs.held_events import take_held_events
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.models import Audiobook, Job, JobEvent, Request
from app.notifications import events


def _messages(job_id: str) -> list[str]:
    return [e.message for e in JobEvent.select().where(JobEvent.job == job_id).order_by(JobEvent.created_at)]


def _count_statements(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = database.obj.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        seen.append(sql)
        return real(sql, params, *args, **kwargs)

    monkeypatch.setattr(database.obj, "execute_sql", counting)
    return seen


def test_add_job_inside_a_run_checks_the_fence_in_its_insert(settings, redis_conn, monkeypatch):
    parent = add_job("noop", {})
    run = fence.begin(parent)
    assert run is not None
    try:
        statements = _count_statements(monkeypatch)
        child = add_job("noop", {})  # the run holds its job: the row lands, checked in the insert itself
        assert len(statements) == 1 and statements[0].startswith("INSERT INTO jobs") and "EXISTS" in statements[0]
        assert Job.get_by_id(child).status == "pending"
        assert state.mark_stopped(parent, "taken away")  # the run no longer holds its job
        rows = Job.select().count()
        with pytest.raises(fence.LeaseLost):
            add_job("noop", {})
        assert Job.select().count() == rows and run.lost
        statements.clear()
        with pytest.raises(fence.LeaseLost):  # known lost: refused before any statement
            add_job("noop", {})
        assert statements == []
    finally:
        fence.end()


def test_add_job_outside_a_run_inserts_unfenced(settings, redis_conn, monkeypatch):
    statements = _count_statements(monkeypatch)
    add_job("noop", {})
    assert len(statements) == 1 and "EXISTS" not in statements[0]


def test_ending_a_run_writes_its_held_events_or_hands_them_to_the_completion(settings, redis_conn):
    job_id = add_job("noop", {})
    run = fence.begin(job_id)
    create_job_logger(job_id, "Test").info("held until the end")
    assert run.held_events and _messages(job_id) == []
    assert fence.end("00000000-0000-0000-0000-000000000000") is None and fence.current() is run  # not its run
    assert fence.end(job_id) is run and fence.current() is None
    assert _messages(job_id) == ["held until the end"] and run.held_events == []
    assert fence.end() is None  # nothing left to end

    completed = add_job("noop", {})
    run = fence.begin(completed)
    create_job_logger(completed, "Test").info("written with the completion")
    assert fence.end(completed, keep_events=True) is run and _messages(completed) == []
    assert state.mark_completed(completed, {"ok": True}, run.token, take_held_events(run))
    assert _messages(completed) == ["written with the completion"]


def test_a_stopped_run_loses_its_held_events_at_its_end(settings, redis_conn):
    job_id = add_job("noop", {})
    run = fence.begin(job_id)
    create_job_logger(job_id, "Test").info("never stored")
    assert state.mark_stopped(job_id, "stopped")
    run.stopped = True
    assert fence.end(job_id) is run
    assert _messages(job_id) == [] and run.held_events == []


def _request_searching() -> Request:
    book = Audiobook.create(title="Elantris", author="Brandon Sanderson")
    return Request.create(audiobook=book, status="searching")


def test_a_final_failure_fails_the_request_only_through_its_types_hook(settings, redis_conn, monkeypatch):
    request = _request_searching()
    payload = {"requestId": str(request.id), "audiobook": {"title": "Elantris", "author": "Brandon Sanderson"}}
    job_id = add_job("search_indexers", payload)
    real = types.get("search_indexers")
    monkeypatch.setattr(types, "get", lambda name: dataclasses.replace(real, final_failure_hook=""))
    final_failure.fail_request_of_job(job_id, "boom")
    assert Request.get_by_id(request.id).status == "searching"  # no hook: the request is left alone
    monkeypatch.undo()
    final_failure.fail_request_of_job(job_id, "boom")
    failed = Request.get_by_id(request.id)
    assert failed.status == "failed" and "search_indexers failed: boom" in failed.error_message
    assert any("marked failed" in message for message in _messages(job_id))


def test_every_hook_resolves_and_the_request_steps_are_the_types_with_one():
    assert final_failure.resolve(final_failure.JOB_FAILED_NOTIFIER) is events.job_failed
    hooked = {t.name: t.final_failure_hook for t in types.all_types() if t.final_failure_hook}
    assert set(hooked) == set(STEP_STATUS)
    assert all(callable(final_failure.resolve(path)) for path in hooked.values())


def test_a_run_ended_as_lost_drops_its_held_events_without_a_statement(settings, redis_conn, monkeypatch):
    job_id = add_job("noop", {})
    run = fence.begin(job_id)
    create_job_logger(job_id, "Test").info("dropped")
    statements = _count_statements(monkeypatch)
    assert fence.end(job_id, lost=True) is run and run.lost
    assert statements == [] and run.held_events == []
    monkeypatch.undo()
    assert _messages(job_id) == []

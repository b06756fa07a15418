"""add_job: validation, row-then-enqueue, RQ ids, priorities and delays."""
from __future__ import annotations

import pytest
from rq import Queue
from rq.job import Job as RQJob
from rq.registry import ScheduledJobRegistry

from app.jobs import service
from app.jobs.errors import EnqueueFailed, InvalidPayload, UnknownJobType
from app.jobs.queues import queue_name, queue_names_for_group
from app.jobs.types import Priority
from app.models import Audiobook, Job, Request

import jobtypes  # noqa: F401
from helpers import drain


def test_it_writes_the_row_before_enqueueing(settings, redis_conn, monkeypatch):
    seen_rows = []
    real_enqueue = service.enqueue_run

    def spy(definition, payload, level, attempts, delay):
        seen_rows.append(Job.get_or_none(Job.id == payload["jobId"]))
        assert Queue(queue_name("noop", level), connection=redis_conn).count == 0
        real_enqueue(definition, payload, level, attempts, delay)

    monkeypatch.setattr(service, "enqueue_run", spy)
    job_id = service.add_job("noop", {"note": "hello"})

    assert seen_rows and seen_rows[0] is not None and seen_rows[0].status == "pending"
    row = Job.get_by_id(job_id)
    assert row.payload == {"note": "hello", "jobId": job_id}
    assert row.rq_job_id == f"job-{job_id}"
    rq_job = RQJob.fetch(f"job-{job_id}", connection=redis_conn)
    assert rq_job.args == ("noop", {"note": "hello", "jobId": job_id})
    assert rq_job.origin == "noop.low"  # noop's default priority is low


@pytest.mark.parametrize("job_type,payload,error,needle", [
    ("no_such_type", {}, UnknownJobType, "unknown job type 'no_such_type'"),
    ("search_indexers", {"requestId": "x"}, InvalidPayload, "missing required key(s): audiobook"),
    ("organize_files", {"requestId": "", "audiobookId": "a", "downloadPath": "/d"}, InvalidPayload, "requestId"),
    ("noop", ["not", "a", "dict"], InvalidPayload, "must be a JSON object"),
    ("noop", {"when": object()}, InvalidPayload, "not JSON-serialisable"),
    ("noop", {"nan": float("nan")}, InvalidPayload, "not JSON-serialisable"),
    ("noop", {"requestId": "not-a-uuid"}, InvalidPayload, "unknown request id"),
    ("noop", {"requestId": "5b0c1f3e-7d1f-4c3a-9a43-1f0b1d2e3c4d"}, InvalidPayload, "unknown request id"),
])
def test_bad_input_raises_a_clear_error_and_writes_nothing(settings, redis_conn, job_type, payload, error, needle):
    with pytest.raises(error) as caught:
        service.add_job(job_type, payload)
    assert needle in str(caught.value)
    assert Job.select().count() == 0
    assert redis_conn.keys("rq:queue:*") == []


def test_bad_priority_and_delay_are_refused(settings, redis_conn):
    with pytest.raises(ValueError, match="unknown priority"):
        service.add_job("noop", {}, priority="urgent")
    with pytest.raises(ValueError, match="delay must be >= 0"):
        service.add_job("noop", {}, delay=-1)
    assert Job.select().count() == 0


def test_request_id_links_the_job_to_its_request(settings, redis_conn):
    book = Audiobook.create(title="The Way of Kings", author="Brandon Sanderson")
    request = Request.create(audiobook=book)
    job_id = service.add_job("noop", {"requestId": str(request.id)})
    assert str(Job.get_by_id(job_id).request_id) == str(request.id)


def test_redis_down_marks_the_row_failed_and_raises(tmp_path, settings, use_settings):
    use_settings(REDIS_URL="redis://127.0.0.1:1/0")
    with pytest.raises(EnqueueFailed, match="could not be enqueued"):
        service.add_job("noop", {})
    row = Job.get()
    assert row.status == "failed"
    assert row.error_message.startswith("Could not enqueue")


def test_a_delayed_job_waits_in_the_scheduled_registry(settings, redis_conn):
    job_id = service.add_job("noop", {}, delay=60)
    row = Job.get_by_id(job_id)
    assert row.status == "delayed" and row.run_at is not None
    registry = ScheduledJobRegistry("noop.low", connection=redis_conn)
    assert registry.get_job_ids() == [f"job-{job_id}"]


def test_priorities_map_onto_three_levels():
    assert Priority.parse("high") is Priority.HIGH
    assert Priority.parse(10) is Priority.HIGH and Priority.parse(9) is Priority.MEDIUM
    assert Priority.parse(5) is Priority.MEDIUM and Priority.parse(4) is Priority.LOW
    assert Priority.parse(0) is Priority.LOW and Priority.parse(None) is Priority.MEDIUM


def test_a_high_job_enqueued_behind_50_low_ones_runs_next(settings, redis_conn):
    for index in range(50):
        service.add_job("test_record", {"tag": f"low-{index}"}, priority=Priority.LOW)
    service.add_job("test_record", {"tag": "medium"}, priority=Priority.MEDIUM)
    service.add_job("test_record", {"tag": "high"}, priority=Priority.HIGH)

    drain(queue_names_for_group("testing"))

    order = [item.decode() for item in redis_conn.lrange("test:order", 0, -1)]
    assert order[:2] == ["high", "medium"]
    assert order[2:] == [f"low-{index}" for index in range(50)]
    assert Job.select().where(Job.status == "completed").count() == 52


def test_job_ids_are_uuid_strings_and_malformed_ids_are_not_found(settings, redis_conn):
    job_id = service.add_job("noop", {})
    assert service.get_job(job_id).id.hex == job_id.replace("-", "")
    assert service.get_job("nope") is None
    assert service.get_job("'; DROP TABLE jobs; --") is None
    assert service.get_job("00000000-0000-0000-0000-000000000000") is None

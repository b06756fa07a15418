"""The request pipeline's table agrees with itself and with the job registry, and every step's payload builder
makes a payload add_job accepts (the builders are what the API, the chaining processors and the reconciler use)."""
from __future__ import annotations

import pytest

from app.audiobook_requests import pipeline
from app.audiobook_requests.pipeline import RERUN_STEP, STEP_STATUS, STEPS, Book
from app.audiobook_requests.state import IN_PROGRESS, RequestStatus, allowed
from app.jobs import types
from app.jobs.errors import InvalidPayload
from app.jobs.service import add_job
from app.models import Audiobook, Job, Request
from app.pipeline.ranking import Release


def test_every_step_is_a_registered_request_step_working_in_an_in_progress_status():
    for step in STEPS:
        job_type = types.get(step.kind)
        assert job_type is not None, step.kind
        assert job_type.final_failure_hook, f"{step.kind}: a request step fails its request on a final failure"
        assert step.status in IN_PROGRESS, step
        assert STEP_STATUS[step.kind] is step.status
    assert len({step.kind for step in STEPS}) == len(STEPS)


def test_every_in_progress_status_has_a_step_that_reruns_it_and_can_enter_its_status():
    assert set(RERUN_STEP) == {status.value for status in IN_PROGRESS}
    for status, kind in RERUN_STEP.items():
        assert kind in STEP_STATUS, (status, kind)
        assert status == STEP_STATUS[kind].value or allowed(status, STEP_STATUS[kind]), (status, kind)


def _sample_args(kind: str, request: Request) -> tuple:
    book = Book.of(request.audiobook)
    release = Release(title="Dune Unabridged", indexer="Tracker", size=10, seeders=3, download_url="http://x/t")
    return {
        "search_indexers": (str(request.id), book),
        "download_torrent": (str(request.id), book.to_payload(), release),
        "monitor_download": (str(request.id), "history-1", "abc123", "qbittorrent"),
        "organize_files": (str(request.id), book.id, "/downloads/Dune"),
    }[kind]


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.kind)
def test_each_builder_makes_a_payload_that_add_job_accepts(step, use_settings):
    book = Audiobook.create(title="Dune", author="Frank Herbert", audible_asin="B002V1OF70")
    request = Request.create(audiobook=book, user_id="admin", status=RequestStatus.PENDING.value)
    payload = step.build(*_sample_args(step.kind, request), reconciled=True)
    job_id = add_job(step.kind, payload, priority=step.priority, request_id=request.id)
    row = Job.get_by_id(job_id)
    assert row.type == step.kind and row.payload["reconciled"] is True and str(row.request_id) == str(request.id)
    for key in types.get(step.kind).required_keys:  # and the check is real: each key is needed
        with pytest.raises(InvalidPayload, match=key):
            add_job(step.kind, {k: v for k, v in payload.items() if k != key}, request_id=request.id)


def test_step_lookup_refuses_a_type_that_is_no_step():
    assert pipeline.step("organize_files").priority is not None
    with pytest.raises(KeyError):
        pipeline.step("scan_plex")

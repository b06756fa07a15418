"""The first poll of a new download is a poll batch's too (add_job's `poll_batched`, app/jobs/service.py): its row
waits as a poll (delayed + polling, no RQ job) with its id in the due set, a batch polls it, and the row ends as
the download's own first run would have left it; anything not plain goes to the download's own run, which then
is an ordinary first attempt; Redis losing the entry is repaired. PostgreSQL only (SQLite keeps an RQ run)."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob

from app.audiobook_requests.state import RequestStatus
from app.jobs import poll_batches
from app.jobs.queues import get_redis, queue_names_for_group
from app.jobs.recovery import requeue_lost_jobs
from app.jobs.service import add_job, rq_job_id
from app.models import Audiobook, DownloadHistory, Job, JobEvent, Request, utcnow

from helpers import drain

MONITOR_QUEUES = queue_names_for_group("monitor_download")
FIRST_DELAY = 0.2



def _download(fake_client, n: int, *, batched: bool, in_client: bool = True) -> str:
    info_hash = f"{n:040x}"
    if in_client:
        fake_client.put(info_hash, progress=0.2)
    book = Audiobook.create(title=f"Book {n}", author="Brandon Sanderson")
    request = Request.create(audiobook=book, status=RequestStatus.DOWNLOADING.value)
    history = DownloadHistory.create(request=request, selected=True, download_client="qbittorrent",
                                     download_client_id=info_hash, torrent_hash=info_hash,
                                     download_status="downloading")
    return add_job("monitor_download", {"requestId": str(request.id), "downloadHistoryId": str(history.id),
                                        "downloadClientId": info_hash, "downloadClient": "qbittorrent"},
                   delay=FIRST_DELAY, poll_batched=batched)


def _has_rq_job(job_id: str) -> bool:
    try:
        RQJob.fetch(rq_job_id(job_id), connection=get_redis())
    except NoSuchJobError:
        return False
    return True


def _row(job_id: str) -> tuple:
    row = Job.get_by_id(job_id)
    payload = {k: row.payload.get(k) for k in ("lastBytes", "lastLoggedPercent", "stallCount", "connectionFailures")}
    return row.status, row.polling, row.polls, row.attempts, row.run_token, row.error_message, payload


def test_a_new_downloads_first_poll_is_polled_by_a_batch_and_its_row_ends_as_its_own_run_would(
        settings_env, fake_client, own_runs):
    assert poll_batches.enabled()
    batched = _download(fake_client, 1, batched=True)
    ordinary = _download(fake_client, 2, batched=False)  # today's path, as the reference
    row = Job.get_by_id(batched)
    # waiting as a poll: shown as delayed, due in FIRST_DELAY, in the due set, no RQ job
    assert (row.status, row.polling, row.polls, row.attempts) == ("delayed", True, 0, 0)
    assert abs((row.run_at - row.created_at).total_seconds() - FIRST_DELAY) < 0.1
    due = get_redis().zscore(poll_batches.DUE_KEY, batched)
    assert due is not None and abs(due - row.payload["pollDueAt"]) < 0.01
    assert not _has_rq_job(batched) and _has_rq_job(ordinary)
    time.sleep(FIRST_DELAY)
    drain(MONITOR_QUEUES, until=lambda: Job.get_by_id(batched).polls >= 1 and Job.get_by_id(ordinary).polls >= 1,
          timeout=30)
    assert own_runs == [ordinary]  # the batched download had no run of its own
    assert not _has_rq_job(batched)
    assert _row(batched) == _row(ordinary) == (
        "delayed", True, 1, 1, None, None,
        {"lastBytes": 20, "lastLoggedPercent": 20, "stallCount": 0, "connectionFailures": 0})
    assert Job.get_by_id(batched).started_at is not None
    assert 8 < get_redis().zscore(poll_batches.DUE_KEY, batched) - time.time() <= 10  # next poll in 10 s
    events = [e.message for e in JobEvent.select().where(JobEvent.job == batched)]
    assert "Downloading: 20% (downloading)" in events
    assert Request.get_by_id(Job.get_by_id(batched).request_id).progress == 20


def test_a_first_poll_that_is_not_plain_is_the_downloads_own_first_attempt(settings_env, fake_client, own_runs):
    """The request moved on before the first poll: handed to its own run (which stops the monitoring), released
    as an ordinary delayed row with an RQ job (not a waiting poll), so that run counts attempt 1 as today's."""
    job_id = _download(fake_client, 3, batched=True)
    Request.update(status=RequestStatus.CANCELLED.value).where(Request.id == Job.get_by_id(job_id).request_id).execute()
    time.sleep(FIRST_DELAY)
    drain(MONITOR_QUEUES, until=lambda: Job.get_by_id(job_id).status == "completed", timeout=30)
    assert own_runs == [job_id]
    row = Job.get_by_id(job_id)
    assert (row.polling, row.polls, row.attempts, row.result["stopped"]) == (False, 0, 1, True)


def test_a_first_poll_lost_with_redis_is_added_again_and_not_requeued_as_a_lost_job(settings_env, fake_client,
                                                                                     own_runs):
    job_id = _download(fake_client, 4, batched=True)
    connection = get_redis()
    connection.delete(poll_batches.DUE_KEY)  # Redis restarted without persistence
    old = utcnow() - timedelta(minutes=2)
    Job.update(run_at=old, updated_at=old).where(Job.id == job_id).execute()
    assert requeue_lost_jobs(connection) == []  # no RQ job is expected: not a lost job
    assert poll_batches.repair_lost(connection) == [job_id]
    drain(MONITOR_QUEUES, until=lambda: Job.get_by_id(job_id).polls >= 1, timeout=30)
    assert own_runs == [] and _row(job_id)[:4] == ("delayed", True, 1, 1)


def test_a_cancelled_first_poll_is_not_polled(settings_env, fake_client, own_runs):
    from app.jobs.service import cancel_job

    job_id = _download(fake_client, 5, batched=True)
    cancel_job(job_id)
    time.sleep(FIRST_DELAY)
    drain(MONITOR_QUEUES, until=lambda: get_redis().zcard(poll_batches.DUE_KEY) == 0, timeout=30)
    drain(MONITOR_QUEUES, timeout=5)
    assert own_runs == [] and Job.get_by_id(job_id).status == "cancelled"


def test_a_first_poll_redis_refuses_fails_its_row_as_a_refused_enqueue_does(settings_env, fake_client, own_runs,
                                                                            monkeypatch):
    from app.jobs.errors import EnqueueFailed

    def refused(connection, due):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(poll_batches, "schedule", refused)
    with pytest.raises(EnqueueFailed):
        _download(fake_client, 6, batched=True)
    row = Job.get(Job.type == "monitor_download")
    assert row.status == "failed" and "redis is down" in row.error_message

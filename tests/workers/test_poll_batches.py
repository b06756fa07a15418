"""Poll batches (app/jobs/poll_batches.py, workers/poll_batch.py): the waiting polls of monitor_download are
polled many at a time, one RQ run and one client call for all that are due, each download keeping its own jobs
row; what is not a plain "still downloading" goes to the download's own run; every write is fenced by each
row's own token; a lost due-set entry is repaired. The pure decision is `monitor_policy.plain_poll`."""
from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from app.audiobook_requests.state import RequestStatus
from app.integrations import torrent_snapshot
from app.jobs import pausing, poll_batches, state
from app.jobs.queues import get_redis, queue_names_for_group
from app.jobs.recovery import requeue_lost_jobs
from app.jobs.service import add_job
from app.models import Audiobook, DownloadHistory, Job, JobEvent, Request, utcnow
from app.pipeline.download_state import DownloadState
from app.pipeline.monitor_policy import PollOutcome, PollState, plain_poll

from helpers import drain

NOW = datetime(2026, 1, 1, 12, 0, 0)
MONITOR_QUEUES = queue_names_for_group("monitor_download")


# --- the pure decision ----------------------------------------------------------------------------------------

def _plain(**changes):
    args = dict(request_downloading=True, download_open=True, found=True, complete=False, failed=False,
                downloaded=500, progress=0.5, allowed=True, stall_limit_seconds=3600, base_delay=10)
    return plain_poll(PollState(last_bytes=400, last_logged_percent=40, motionless_since=NOW), NOW,
                      **{**args, **changes})


@pytest.mark.parametrize("changes", [
    {"request_downloading": False},   # the request moved on: its own run stops the monitoring
    {"download_open": False},         # the download_history row was settled meanwhile
    {"found": False},                 # missing from the client's answer (or no answer): looked up on its own
    {"complete": True},               # organize next
    {"failed": True},                 # blocklist and search again
])
def test_what_is_not_a_plain_poll_goes_to_the_downloads_own_run(changes):
    assert _plain(**changes) is None


def test_a_stall_past_the_limit_goes_to_the_downloads_own_run_and_a_short_one_polls_again():
    still = PollState(last_bytes=500, last_logged_percent=50, motionless_since=NOW - timedelta(hours=2))
    args = dict(request_downloading=True, download_open=True, found=True, complete=False, failed=False,
                downloaded=500, progress=0.5, allowed=True, base_delay=10)
    assert plain_poll(still, NOW, stall_limit_seconds=3600, **args) is None
    decision = plain_poll(still, NOW, stall_limit_seconds=3 * 3600, **args)
    assert decision is not None and decision.outcome is PollOutcome.POLL_AGAIN and decision.poll.stall_count == 1


def test_a_moving_download_polls_again_at_the_base_delay_and_logs_a_new_step():
    decision = _plain()
    assert decision.delay == 10 and decision.log_progress and decision.poll.last_bytes == 500
    assert decision.poll.last_logged_percent == 50 and decision.poll.motionless_since == NOW


# --- batches on Redis and PostgreSQL ----------------------------------------------------------------------------

def _monitored(fake_client, n: int, progress: float = 0.2) -> str:
    info_hash = f"{n:040x}"
    fake_client.put(info_hash, progress=progress)
    book = Audiobook.create(title=f"Book {n}", author="Brandon Sanderson")
    request = Request.create(audiobook=book, status=RequestStatus.DOWNLOADING.value)
    history = DownloadHistory.create(request=request, selected=True, download_client="qbittorrent",
                                     download_client_id=info_hash, torrent_hash=info_hash,
                                     download_status="downloading")
    return add_job("monitor_download", {"requestId": str(request.id), "downloadHistoryId": str(history.id),
                                        "downloadClientId": info_hash, "downloadClient": "qbittorrent"})


def _due_now(job_ids: list[str]) -> None:
    """The next polls are due now, and the client's shared answer has expired."""
    Job.update(run_at=utcnow() - timedelta(seconds=1)).where(Job.id.in_(job_ids)).execute()
    connection = get_redis()
    connection.zadd(poll_batches.DUE_KEY, dict.fromkeys(job_ids, time.time() - 1))
    key = torrent_snapshot.KEY.format(kind="qbittorrent")
    connection.delete(key, f"{key}:fresh")



def _first_polls(job_ids: list[str]) -> None:
    drain(MONITOR_QUEUES, until=lambda: all(Job.get_by_id(j).polls >= 1 for j in job_ids), timeout=30)


def test_one_batch_polls_many_downloads_with_one_client_call_and_writes_each_row(settings_env, fake_client, own_runs):
    jobs = [_monitored(fake_client, n) for n in range(12)]
    _first_polls(jobs)
    assert len(own_runs) == 12  # each first poll is the download's own run
    connection = get_redis()
    assert all(connection.zscore(poll_batches.DUE_KEY, j) is not None for j in jobs)  # waiting in the due set
    for n in range(12):
        fake_client.set(f"{n:040x}", progress=0.45, downloaded=45)
    fake_client.calls.clear()
    _due_now(jobs)
    drain(MONITOR_QUEUES, until=lambda: all(Job.get_by_id(j).polls >= 2 for j in jobs), timeout=30)
    assert fake_client.calls == ["snapshot"] and len(own_runs) == 12  # one call, no run of their own
    for job_id in jobs:
        row = Job.get_by_id(job_id)
        assert (row.status, row.polling, row.polls, row.attempts, row.run_token) == ("delayed", True, 2, 1, None)
        assert row.payload["lastBytes"] == 45 and row.payload["lastLoggedPercent"] == 45
        assert Request.get_by_id(row.request_id).progress == 45
        assert 8 < connection.zscore(poll_batches.DUE_KEY, job_id) - time.time() <= 10  # next poll in 10 s
        messages = [e.message for e in JobEvent.select().where(JobEvent.job == job_id).order_by(JobEvent.created_at)]
        assert messages[-1] == "Downloading: 45% (downloading)"


def test_what_a_batch_does_not_poll_plainly_is_polled_by_the_downloads_own_run(settings_env, fake_client, own_runs):
    moving, complete, moved_on = (_monitored(fake_client, n) for n in range(3))
    _first_polls([moving, complete, moved_on])
    fake_client.set(f"{1:040x}", progress=1.0, downloaded=100, state=DownloadState.COMPLETE)
    Request.update(status=RequestStatus.FAILED.value).where(Request.id == Job.get_by_id(moved_on).request_id).execute()
    fake_client.set(f"{0:040x}", progress=0.3, downloaded=30)
    own_runs.clear()
    _due_now([moving, complete, moved_on])
    drain(MONITOR_QUEUES, until=lambda: Job.get_by_id(moving).polls >= 2 and Job.get_by_id(complete).status ==
          "completed" and Job.get_by_id(moved_on).status == "completed", timeout=30)
    assert sorted(own_runs) == sorted([complete, moved_on])
    assert Job.get_by_id(complete).result["completed"] is True
    assert Job.select().where(Job.type == "organize_files").count() == 1
    assert Job.get_by_id(moved_on).result["stopped"] is True
    row = Job.get_by_id(moving)
    assert (row.status, row.polls, row.payload["lastBytes"]) == ("delayed", 2, 30)


def test_a_claim_takes_only_due_waiting_polls_and_a_stale_token_writes_nothing(settings_env, fake_client):
    due, later, cancelled = (_monitored(fake_client, n) for n in range(3))
    _first_polls([due, later, cancelled])
    _due_now([due, cancelled])
    state.mark_cancelled(cancelled, "test")
    claimed = state.claim_polls({due: "t-due", later: "t-later", cancelled: "t-cancelled"}, utcnow())
    assert [row["id"] for row in claimed] == [due]
    row = Job.get_by_id(due)
    assert (row.status, row.run_token, row.polling, row.attempts) == ("active", "t-due", True, 1)
    assert state.mark_polls_waiting([(due, "stale", 10, {"x": 1})]) == []
    assert Job.get_by_id(due).status == "active"
    assert state.mark_polls_waiting([(due, "t-due", 10, {**row.payload, "x": 1})]) == [due]
    row = Job.get_by_id(due)
    assert (row.status, row.polls, row.payload["x"], row.run_token) == ("delayed", 2, 1, None)


def test_a_waiting_poll_lost_from_redis_is_added_again_and_not_requeued_as_a_lost_job(settings_env, fake_client,
                                                                                       own_runs):
    jobs = [_monitored(fake_client, n) for n in range(3)]
    _first_polls(jobs)
    connection = get_redis()
    connection.delete(poll_batches.DUE_KEY)  # Redis restarted without persistence
    old = utcnow() - timedelta(minutes=2)
    Job.update(run_at=old, updated_at=old).where(Job.id.in_(jobs)).execute()
    assert requeue_lost_jobs(connection) == []  # its RQ job finished long ago: that is not a lost job
    assert sorted(poll_batches.repair_lost(connection)) == sorted(jobs)
    assert all(connection.zscore(poll_batches.DUE_KEY, j) is not None for j in jobs)
    assert poll_batches.repair_lost(connection) == []  # in the set now: nothing to repair
    own_runs.clear()
    drain(MONITOR_QUEUES, until=lambda: all(Job.get_by_id(j).polls >= 2 for j in jobs), timeout=30)
    assert own_runs == []


def test_repair_adds_exactly_the_lost_polls(settings_env, fake_client):
    jobs = [_monitored(fake_client, n) for n in range(3)]
    _first_polls(jobs)
    connection = get_redis()
    connection.zrem(poll_batches.DUE_KEY, jobs[0])
    Job.update(run_at=utcnow() - timedelta(minutes=2)).where(Job.id.in_(jobs[:2])).execute()
    assert poll_batches.repair_lost(connection) == [jobs[0]]  # jobs[1] is still in the set; jobs[2] not due


def test_no_batch_is_queued_while_monitor_download_is_paused(settings_env, fake_client):
    jobs = [_monitored(fake_client, n) for n in range(3)]
    _first_polls(jobs)
    _due_now(jobs)
    connection = get_redis()
    pausing.pause("monitor_download", "test", connection)
    assert poll_batches.promote(connection) == 0
    pausing.resume("monitor_download", connection)
    assert poll_batches.promote(connection) == 1
    assert poll_batches.promote(connection) == 0  # one batch covers them and is already queued


def test_a_batch_takes_each_due_poll_once(settings_env, redis_conn):
    redis_conn.zadd(poll_batches.DUE_KEY, {"a": time.time() - 5, "b": time.time() - 1, "c": time.time() + 60})
    assert list(poll_batches.take_due(redis_conn, limit=1)) == ["a"]
    assert list(poll_batches.take_due(redis_conn)) == ["b"]
    assert poll_batches.take_due(redis_conn) == {}


# --- a download handed to its own run, a batch lost after its claim, the metrics of a first poll ------------------

def test_a_download_handed_to_its_own_run_is_never_repaired_into_the_due_set(settings_env, fake_client, own_runs):
    """The hand-on queues an RQ run of its own: the row is pending (not a waiting poll), so a backlog longer than
    the repair's grace never puts it in the due set too (a second batch would poll it, then its own run again)."""
    from workers.poll_batch import poll_due

    job = _monitored(fake_client, 0, progress=0.2)
    _first_polls([job])
    connection = get_redis()
    _due_now([job])
    fake_client.down = True  # no answer: the batch hands the download to its own run
    poll_due(connection)
    row = Job.get_by_id(job)
    assert (row.status, row.polling) == ("pending", True)
    Job.update(run_at=utcnow() - timedelta(seconds=60), updated_at=utcnow() - timedelta(seconds=60)) \
        .where(Job.id == job).execute()  # its own run waits in a long backlog
    assert poll_batches.repair_lost(connection) == []
    assert connection.zscore(poll_batches.DUE_KEY, job) is None
    assert job not in requeue_lost_jobs(connection)  # its RQ job is queued: nothing lost
    fake_client.down = False
    own_runs.clear()
    drain(MONITOR_QUEUES, until=lambda: bool(own_runs), timeout=15)
    row = Job.get_by_id(job)
    assert own_runs == [job] and row.status == "delayed" and row.attempts == 1  # polled once, no attempt spent


def test_a_batch_lost_after_its_claim_never_fails_a_download_whose_runs_used_every_attempt(settings_env,
                                                                                          fake_client):
    from app.jobs.recovery import sweep_expired_leases

    job = _monitored(fake_client, 1, progress=0.2)
    _first_polls([job])
    Job.update(attempts=Job.max_attempts).where(Job.id == job).execute()  # its runs needed every attempt
    _due_now([job])
    assert [row["id"] for row in state.claim_polls({job: "lost-batch"}, utcnow())] == [job]
    assert sweep_expired_leases(get_redis(), now=utcnow() + timedelta(minutes=5)) == [job]
    row = Job.get_by_id(job)
    assert row.status == "stuck"
    assert Request.get_by_id(row.request_id).status == RequestStatus.DOWNLOADING.value


def test_a_first_poll_is_counted_once_in_the_metrics(settings_env, fake_client):
    from app.jobs import metrics

    connection = get_redis()
    connection.delete(metrics.RUNS_KEY, metrics.DURATIONS_KEY)
    job = _monitored(fake_client, 2, progress=0.2)
    _first_polls([job])
    runs = {key.decode(): int(value) for key, value in connection.hgetall(metrics.RUNS_KEY).items()}
    assert runs == {"monitor_download|polled": 1} and Job.get_by_id(job).status == "delayed"

"""The request reconciler: the pure decision table, then strandings made on the real database the
way real faults leave them, repaired (or left alone) by reconcile_requests()."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from app.audiobook_requests import reconciler
from app.audiobook_requests.pipeline import STEP_STATUS
from app.audiobook_requests.reconciler import (
    Action,
    Book,
    DownloadAttempt,
    DownloadRecord,
    Evidence,
    LastJob,
    decide_repair,
    reconcile_requests,
)
from app.audiobook_requests.state import RequestStatus, allowed, transition
from app.jobs import types
from app.models import Audiobook, DownloadHistory, Job, JobEvent, Request, utcnow

# ---- the decision table ----

T0 = datetime(2024, 5, 1, 12, 0, 0)
BOOK = Book("book-1", "The Way of Kings", "Brandon Sanderson", "B003P2WO5E")
DOWNLOAD = DownloadRecord("dh-1", "qbittorrent", "abc123", "downloading", created_at=T0)
ATTEMPT = DownloadAttempt({"requestId": "req-1", "audiobook": {"id": "book-1"}, "torrent": {"title": "WoK"},
                           "alternateTorrents": [], "jobId": "old-job"}, created_at=T0 - timedelta(seconds=5))
NOTHING = Evidence("req-1", BOOK)
WITH_DOWNLOAD = Evidence("req-1", BOOK, download=DOWNLOAD, download_attempt=ATTEMPT)
SEARCH_PAYLOAD = {"requestId": "req-1", "reconciled": True, "audiobook": {
    "id": "book-1", "title": "The Way of Kings", "author": "Brandon Sanderson", "asin": "B003P2WO5E"}}
MONITOR_PAYLOAD = {"requestId": "req-1", "downloadHistoryId": "dh-1", "downloadClientId": "abc123",
                   "downloadClient": "qbittorrent", "reconciled": True}
DOWNLOAD_PAYLOAD = {"requestId": "req-1", "audiobook": {"id": "book-1"}, "torrent": {"title": "WoK"},
                    "alternateTorrents": [], "reconciled": True}
ORGANIZE_PAYLOAD = {"requestId": "req-1", "audiobookId": "book-1", "downloadPath": "/dl/WoK", "reconciled": True}


def job(job_type: str, status: str, error: str | None = None, reconciled: bool = False) -> LastJob:
    return LastJob(id="job-9", type=job_type, status=status, error_message=error, reconciled=reconciled)


def rerun(job_type: str, payload: dict, priority=types.Priority.HIGH) -> tuple:
    return (Action.RERUN, job_type, payload, priority)


TABLE = [
    # (name, request status, last job, evidence, expected: (action, reason) | (RERUN, type, payload, priority))
    ("not in progress: failed", "failed", None, NOTHING, (Action.NONE, "failed is not an in-progress status")),
    ("not in progress: awaiting_search", "awaiting_search", None, NOTHING,
     (Action.NONE, "awaiting_search is not an in-progress status")),
    ("not in progress: downloaded", "downloaded", job("organize_files", "completed"), NOTHING,
     (Action.NONE, "downloaded is not an in-progress status")),
    *[(f"unfinished last job: {s}", "downloading", job("monitor_download", s), WITH_DOWNLOAD,
       (Action.NONE, f"job job-9 (monitor_download) is {s}")) for s in ("pending", "delayed", "active", "stuck")],
    ("search failed", "searching", job("search_indexers", "failed", "ServiceError: Prowlarr is down"), NOTHING,
     (Action.FAIL, "search_indexers failed: ServiceError: Prowlarr is down")),
    ("search failed before it started", "pending", job("search_indexers", "failed", "could not be enqueued"),
     NOTHING, (Action.FAIL, "search_indexers failed: could not be enqueued")),
    ("monitor failed without an error", "downloading", job("monitor_download", "failed"), WITH_DOWNLOAD,
     (Action.FAIL, "monitor_download failed: no error was recorded")),
    ("organize failed", "processing", job("organize_files", "failed", "OSError: disk full"),
     Evidence("req-1", BOOK, completed_download_path="/dl/WoK"),
     (Action.FAIL, "organize_files failed: OSError: disk full")),
    ("a later step failed before moving it", "searching", job("download_torrent", "failed", "could not be enqueued"),
     NOTHING, (Action.FAIL, "download_torrent failed: could not be enqueued")),
    ("a failed re-run is a failure, not a loop", "searching", job("search_indexers", "failed", "boom", True), NOTHING,
     (Action.FAIL, "search_indexers failed: boom")),
    ("re-run ended without moving: searching", "searching", job("search_indexers", "completed", reconciled=True),
     NOTHING, (Action.FAIL, "stranded in searching after a repair; see the job log")),
    ("re-run ended without moving: pending", "pending", job("search_indexers", "cancelled", reconciled=True),
     NOTHING, (Action.FAIL, "stranded in pending after a repair; see the job log")),
    ("re-run ended without moving: downloading", "downloading", job("monitor_download", "completed", reconciled=True),
     WITH_DOWNLOAD, (Action.FAIL, "stranded in downloading after a repair; see the job log")),
    ("re-run ended without moving: processing warns", "processing",
     job("organize_files", "completed", reconciled=True), Evidence("req-1", BOOK, completed_download_path="/dl/WoK"),
     (Action.WARN, "stranded in processing after a repair; see the job log")),
    ("pending, no job ever", "pending", None, NOTHING, rerun("search_indexers", SEARCH_PAYLOAD)),
    ("searching, search completed", "searching", job("search_indexers", "completed"), NOTHING,
     rerun("search_indexers", SEARCH_PAYLOAD)),
    ("searching, search cancelled", "searching", job("search_indexers", "cancelled"), NOTHING,
     rerun("search_indexers", SEARCH_PAYLOAD)),
    ("downloading, a download to monitor", "downloading", job("monitor_download", "completed"), WITH_DOWNLOAD,
     rerun("monitor_download", MONITOR_PAYLOAD, None)),
    ("downloading, no job, a download to monitor", "downloading", None, Evidence("req-1", BOOK, download=DOWNLOAD),
     rerun("monitor_download", MONITOR_PAYLOAD, None)),
    ("downloading, a completed download is monitored again", "downloading", job("monitor_download", "cancelled"),
     Evidence("req-1", BOOK, download=DownloadRecord("dh-1", "qbittorrent", "abc123", "completed", T0)),
     rerun("monitor_download", MONITOR_PAYLOAD, None)),
    ("downloading, the download ended failed", "downloading", job("monitor_download", "completed"),
     Evidence("req-1", BOOK, download=DownloadRecord("dh-1", "qbittorrent", "abc123", "failed", T0, "tracker error")),
     (Action.FAIL, "the download abc123 ended failed: tracker error")),
    ("downloading, the download was removed", "downloading", job("monitor_download", "completed"),
     Evidence("req-1", BOOK, download=DownloadRecord("dh-1", "qbittorrent", "abc123", "removed", T0)),
     (Action.FAIL, "the download abc123 ended removed: no error was recorded")),
    ("downloading, no download recorded: hand the release over again", "downloading",
     job("download_torrent", "completed"), Evidence("req-1", BOOK, download_attempt=ATTEMPT),
     rerun("download_torrent", DOWNLOAD_PAYLOAD)),
    ("downloading, a download_torrent newer than the last download", "downloading",
     job("download_torrent", "completed"),
     Evidence("req-1", BOOK, download=DownloadRecord("dh-0", "qbittorrent", "old", "failed", T0 - timedelta(days=1)),
              download_attempt=ATTEMPT), rerun("download_torrent", DOWNLOAD_PAYLOAD)),
    ("downloading, nothing to resume", "downloading", None, NOTHING,
     (Action.FAIL, "stranded in downloading with no download to resume")),
    ("processing, organize skipped", "processing", job("organize_files", "completed"),
     Evidence("req-1", BOOK, completed_download_path="/dl/WoK"), rerun("organize_files", ORGANIZE_PAYLOAD)),
    ("processing, no job ever", "processing", None, Evidence("req-1", BOOK, completed_download_path="/dl/WoK"),
     rerun("organize_files", ORGANIZE_PAYLOAD)),
    ("processing, nothing to import", "processing", job("organize_files", "completed"), NOTHING,
     (Action.FAIL, "stranded in processing with no completed download to import")),
]


@pytest.mark.parametrize("status,last_job,evidence,expected", [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])
def test_decide_repair(status, last_job, evidence, expected):
    repair = decide_repair(status, last_job, evidence)
    if expected[0] is Action.RERUN:
        assert (repair.action, repair.job_type, repair.payload, repair.priority) == expected
    else:
        assert (repair.action, repair.reason) == expected
        assert repair.job_type is None and repair.payload is None


def test_every_rerun_is_accepted_by_its_processor_from_the_stranded_status():
    """The processor of a re-run enters its step from the status the request was stranded in (no status
    change is needed first), and the payload carries the job type's required keys."""
    reruns = [(row[1], decide_repair(*row[1:4])) for row in TABLE if row[4][0] is Action.RERUN]
    assert {repair.job_type for _, repair in reruns} == {"search_indexers", "monitor_download", "download_torrent",
                                                        "organize_files"}
    for status, repair in reruns:
        if repair.job_type == "monitor_download":
            assert status == RequestStatus.DOWNLOADING.value  # monitor polls only a downloading request
        else:
            assert allowed(status, STEP_STATUS[repair.job_type]), (status, repair.job_type)
        required = types.get(repair.job_type).required_keys
        assert all(repair.payload.get(key) not in (None, "") for key in required), (repair.job_type, repair.payload)
        assert "jobId" not in repair.payload


# ---- the shell, on PostgreSQL and Redis ----

OLD = timedelta(minutes=10)


def make_request(status: str, age: timedelta = OLD) -> Request:
    book = Audiobook.create(title="The Way of Kings", author="Brandon Sanderson", audible_asin="B003P2WO5E")
    stamp = utcnow() - age
    return Request.create(audiobook=book, status=status, created_at=stamp, updated_at=stamp, priority=10)


def make_job(request: Request, job_type: str, status: str, *, payload: dict | None = None, result=None,
             error: str | None = None, age: timedelta = OLD) -> Job:
    stamp = utcnow() - age
    job = Job.create(request=request, type=job_type, status=status, payload=payload or {"requestId": str(request.id)},
                     result=result, error_message=error, created_at=stamp, updated_at=stamp, attempts=1)
    Job.update(payload={**job.payload, "jobId": str(job.id)}).where(Job.id == job.id).execute()
    return job


def make_download(request: Request, *, status: str = "downloading", path: str | None = None,
                  age: timedelta = OLD) -> DownloadHistory:
    stamp = utcnow() - age
    return DownloadHistory.create(request=request, torrent_name="The Way of Kings", torrent_hash="abc123",
                                  selected=True, download_client="qbittorrent", download_client_id="abc123",
                                  download_status=status, download_path=path, created_at=stamp, updated_at=stamp)


def reload(request: Request) -> Request:
    return Request.get_by_id(request.id)


def new_jobs(request: Request, known: list[Job]) -> list[Job]:
    known_ids = {j.id for j in known}
    return [j for j in Job.select().where(Job.request == request.id) if j.id not in known_ids]


def events_of(job_id) -> list[JobEvent]:
    return list(JobEvent.select().where(JobEvent.job == job_id).order_by(JobEvent.created_at))


def test_processing_with_a_skipped_organize_job_imports_again(settings, redis_conn):
    request = make_request("processing")
    make_download(request, status="completed", path="/downloads/The Way of Kings")
    skipped = make_job(request, "organize_files", "completed", result={"success": False, "skipped": True},
                       payload={"requestId": str(request.id), "audiobookId": str(request.audiobook_id),
                                "downloadPath": "/downloads/The Way of Kings"})

    summaries = reconcile_requests()

    [started] = new_jobs(request, [skipped])
    assert started.type == "organize_files" and started.status == "pending" and started.priority == 10
    assert started.payload == {"requestId": str(request.id), "audiobookId": str(request.audiobook_id),
                               "downloadPath": "/downloads/The Way of Kings", "reconciled": True,
                               "jobId": str(started.id)}
    assert redis_conn.exists(f"rq:job:{started.rq_job_id}")
    after = reload(request)
    assert after.status == "processing" and after.updated_at > request.updated_at
    [event] = events_of(started.id)
    assert (event.level, event.context) == ("warn", "Reconciler")
    assert f"stranded in processing since {request.updated_at:%Y-%m-%d %H:%M:%S} UTC" in event.message
    assert f"its last job organize_files {skipped.id} is completed" in event.message
    assert "started organize_files" in event.message
    assert events_of(skipped.id) == []
    assert summaries == [{"requestId": str(request.id), "status": "processing",
                          "strandedSince": request.updated_at.isoformat(), "lastJobId": str(skipped.id),
                          "lastJobType": "organize_files", "lastJobStatus": "completed", "action": "rerun",
                          "jobId": str(started.id), "jobType": "organize_files",
                          "reason": "import the completed download again"}]
    assert event.metadata == summaries[0]


def test_searching_with_a_failed_search_job_fails_with_its_error(settings, redis_conn):
    request = make_request("searching")
    failed = make_job(request, "search_indexers", "failed", error="TransientServiceError: Prowlarr: 503")

    [summary] = reconcile_requests()

    after = reload(request)
    assert after.status == "failed"
    assert after.error_message == "search_indexers failed: TransientServiceError: Prowlarr: 503"
    assert new_jobs(request, [failed]) == []
    [event] = events_of(failed.id)  # no new job: the event goes on the last job, on the request's timeline
    assert (event.level, event.context) == ("warn", "Reconciler")
    assert "stranded in searching" in event.message
    assert "set it to failed: search_indexers failed: TransientServiceError: Prowlarr: 503" in event.message
    assert summary["action"] == "failed" and summary["jobId"] is None


def test_downloading_with_no_jobs_monitors_the_recorded_download(settings, redis_conn):
    request = make_request("downloading")
    download = make_download(request)

    [summary] = reconcile_requests()

    [started] = new_jobs(request, [])
    assert started.type == "monitor_download" and started.status == "pending"
    assert started.payload == {"requestId": str(request.id), "downloadHistoryId": str(download.id),
                               "downloadClientId": "abc123", "downloadClient": "qbittorrent", "reconciled": True,
                               "jobId": str(started.id)}
    assert reload(request).status == "downloading"
    [event] = events_of(started.id)
    assert event.context == "Reconciler" and "no job was ever started for it" in event.message
    assert summary["action"] == "rerun" and summary["lastJobId"] is None


def test_downloading_with_no_jobs_and_no_download_fails_with_the_reason(settings, redis_conn):
    request = make_request("downloading")

    [summary] = reconcile_requests()

    after = reload(request)
    assert (after.status, after.error_message) == ("failed", "stranded in downloading with no download to resume")
    assert Job.select().count() == 0 and JobEvent.select().count() == 0  # no job to carry an event
    assert summary["action"] == "failed"


def test_downloading_without_a_recorded_download_hands_the_release_over_again(settings, redis_conn):
    request = make_request("downloading")
    book = {"id": str(request.audiobook_id), "title": "The Way of Kings", "author": "Brandon Sanderson", "asin": None}
    original = {"requestId": str(request.id), "audiobook": book,
                "torrent": {"title": "WoK", "downloadUrl": "http://x/1"}, "alternateTorrents": []}
    done = make_job(request, "download_torrent", "completed", payload=original, result={"success": True})

    reconcile_requests()

    [started] = new_jobs(request, [done])
    assert started.type == "download_torrent" and started.status == "pending" and started.priority == 10
    assert started.payload == {**original, "reconciled": True, "jobId": str(started.id)}


def test_a_rerun_refused_by_add_job_fails_the_request_instead_of_retrying_every_minute(settings, redis_conn):
    request = make_request("downloading")
    broken = make_job(request, "download_torrent", "completed", payload={"requestId": str(request.id)})

    [summary] = reconcile_requests()

    after = reload(request)
    assert after.status == "failed"
    assert after.error_message.startswith("stranded in downloading; re-running download_torrent was refused: ")
    assert "missing required key(s): audiobook, torrent" in after.error_message
    assert new_jobs(request, [broken]) == [] and len(events_of(broken.id)) == 1
    assert summary["action"] == "failed"


@pytest.mark.parametrize("status,job_type,job_status", [
    ("processing", "organize_files", "active"),
    ("downloading", "monitor_download", "delayed"),
    ("searching", "search_indexers", "stuck"),
    ("pending", "search_indexers", "pending"),
])
def test_a_request_with_an_unfinished_job_is_not_touched(settings, redis_conn, status, job_type, job_status):
    request = make_request(status, age=timedelta(hours=5))
    running = make_job(request, job_type, job_status, age=timedelta(hours=5))
    make_job(request, job_type, "completed", age=timedelta(hours=6))  # an older finished run changes nothing

    assert reconcile_requests() == []

    after = reload(request)
    assert (after.status, after.updated_at) == (status, request.updated_at)
    assert Job.select().count() == 2 and JobEvent.select().count() == 0
    assert Job.get_by_id(running.id).status == job_status


def test_a_request_younger_than_the_grace_is_not_touched(settings, redis_conn):
    request = make_request("searching", age=timedelta(seconds=30))
    make_job(request, "search_indexers", "failed", error="boom", age=timedelta(seconds=30))

    assert reconcile_requests() == []
    assert reload(request).status == "searching"
    # the same request once the grace has passed
    assert [s["requestId"] for s in reconcile_requests(now=utcnow() + timedelta(seconds=120))] == [str(request.id)]
    assert reload(request).status == "failed"


def test_a_rerun_that_strands_again_is_not_repeated(settings, redis_conn):
    """processing → organize re-run → it skips too → warn (files may be in place; the import retry is safe);
    searching → search re-run → it skips too → failed."""
    importing = make_request("processing")
    make_download(importing, status="completed", path="/downloads/WoK")
    make_job(importing, "organize_files", "completed", result={"success": False, "skipped": True})
    searching = make_request("searching")
    make_job(searching, "search_indexers", "cancelled")

    first = reconcile_requests()
    assert sorted(s["action"] for s in first) == ["rerun", "rerun"]
    reruns = {s["requestId"]: s["jobId"] for s in first}
    for job_id in reruns.values():  # both re-runs end without moving their request
        Job.update(status="completed", result={"success": False, "skipped": True}).where(Job.id == job_id).execute()
    assert reconcile_requests() == []  # inside the grace again: the repair refreshed updated_at

    second = reconcile_requests(now=utcnow() + timedelta(minutes=5))

    assert sorted(s["action"] for s in second) == ["failed", "warn"]
    assert (reload(importing).status, reload(importing).error_message) == (
        "warn", "stranded in processing after a repair; see the job log")
    assert (reload(searching).status, reload(searching).error_message) == (
        "failed", "stranded in searching after a repair; see the job log")
    assert Job.select().count() == 4  # no third run
    for job_id in reruns.values():
        messages = [e.message for e in events_of(job_id)]
        assert len(messages) == 2 and "after a repair" in messages[1]
    assert reconcile_requests(now=utcnow() + timedelta(minutes=10)) == []


def test_a_request_that_moves_meanwhile_is_left_alone(settings, redis_conn, monkeypatch):
    request = make_request("searching")
    make_job(request, "search_indexers", "completed")
    real_find = reconciler.find_stranded

    def find_then_cancel(cutoff):
        rows = real_find(cutoff)
        assert transition(request.id, RequestStatus.CANCELLED, error_message="Cancelled by an admin")
        return rows

    monkeypatch.setattr(reconciler, "find_stranded", find_then_cancel)

    assert reconcile_requests() == []
    assert reload(request).status == "cancelled" and Job.select().count() == 1 and JobEvent.select().count() == 0


def test_two_reconcilers_repair_a_request_once(settings, redis_conn, monkeypatch):
    """A second scheduler repairs the request between this run's reads and its write: only one run starts."""
    request = make_request("pending")
    real_decide = reconciler.decide_repair
    theirs: list[dict] = []

    def decide_while_another_scheduler_repairs(*args):
        if not theirs:
            theirs.append({})  # the other run goes through here too: it must not recurse
            theirs.extend(reconcile_requests())
        return real_decide(*args)

    monkeypatch.setattr(reconciler, "decide_repair", decide_while_another_scheduler_repairs)

    assert reconcile_requests() == []
    assert [s["requestId"] for s in theirs[1:]] == [str(request.id)]
    [search] = Job.select()
    assert search.type == "search_indexers" and search.payload["reconciled"] is True


def test_one_bad_request_does_not_stop_the_others(settings, redis_conn, monkeypatch, caplog):
    bad, good = make_request("pending", age=timedelta(hours=2)), make_request("pending")
    real_add_job = reconciler.add_job

    def add_job_failing_for_bad(job_type, payload, **options):
        if payload["requestId"] == str(bad.id):
            raise RuntimeError("Redis is having a moment")
        return real_add_job(job_type, payload, **options)

    monkeypatch.setattr(reconciler, "add_job", add_job_failing_for_bad)

    with caplog.at_level(logging.ERROR, logger=reconciler.__name__):
        summaries = reconcile_requests()

    assert [s["requestId"] for s in summaries] == [str(good.id)]
    assert [j.request_id for j in Job.select()] == [good.id]
    assert f"could not repair request {bad.id}" in caplog.text and "Redis is having a moment" in caplog.text


def test_nothing_stranded_costs_one_query(settings, redis_conn, caplog):
    healthy = make_request("downloading")
    make_job(healthy, "monitor_download", "delayed")
    make_request("available")
    make_request("searching", age=timedelta(seconds=5))

    with caplog.at_level(logging.DEBUG, logger="peewee"):
        assert reconcile_requests() == []

    queries = [r for r in caplog.records if r.name == "peewee"]
    assert len(queries) == 1 and "NOT EXISTS" in queries[0].getMessage()

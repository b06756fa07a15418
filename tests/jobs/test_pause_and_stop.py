"""Workers you can act on: Pause/Resume of a job type's queues, Stop of a running job, the live
workers on the queues page.

Pause: paused_queues in PostgreSQL (the record of truth) mirrored to a Redis set that the one-round-trip dequeue
reads (app/jobs/pausing.py, app/jobs/dequeue.py). Stop: the row is cancelled and fenced at once, the run ends at
its next checkpoint, and a run that never reaches one has its worker killed by the supervisor after 30 s
(app/jobs/stopping.py, workers/worker.py, workers/supervisor.py). The real-process tests run `tests/run_pool.py`
(the supervisor with the test job types) against the test Redis and PostgreSQL.
"""
from __future__ import annotations

import os
import re
import time
from datetime import timedelta

import pytest
from rq import Worker

from app.jobs import fence, state
from app.jobs.pausing import MIRROR_LOADED, PAUSED_KEY
from app.jobs.queues import get_redis, queue_names_for_group
from app.jobs.service import add_job
from app.models import Audiobook, Job, PausedQueue, Request, ScheduledJob, utcnow

import jobtypes  # noqa: F401  (test_record, test_sleep, test_checkpoints: the testing group)
from builders import event_messages
from helpers import HOSTILE, csrf_token, drain, login, screenshot, start_process, stop_process, wait_for

TESTING = queue_names_for_group("testing")


def _status(job_id: str) -> str:
    return Job.get_by_id(job_id).status


# --- pause and resume ---------------------------------------------------------------------------------------------

def test_a_paused_type_stays_queued_while_others_run_and_runs_after_resume(client, redis_conn, bearer):
    answer = client.post("/api/admin/queues/test_record/pause", headers=bearer)
    assert answer.status_code == 200 and answer.get_json()["changed"] is True
    assert answer.get_json()["pausedTypes"] == ["test_record"]
    paused_job = add_job("test_record", {"tag": "paused"})
    other = add_job("test_sleep", {"seconds": 0})
    drain(TESTING)
    assert _status(other) == "completed"
    assert _status(paused_job) == "pending" and redis_conn.lrange("test:order", 0, -1) == []
    assert redis_conn.llen("rq:queue:test_record.medium") == 1  # still queued, in its place

    again = client.post("/api/admin/queues/test_record/pause", headers=bearer).get_json()
    assert again["changed"] is False and PausedQueue.get_by_id("test_record").paused_by == "API token"
    assert client.post("/api/admin/queues/test_record/resume", headers=bearer).get_json()["changed"] is True
    drain(TESTING)
    assert _status(paused_job) == "completed" and redis_conn.lrange("test:order", 0, -1) == [b"paused"]


def test_pause_is_kept_in_the_table_and_survives_a_redis_flush(client, redis_conn, bearer):
    client.post("/api/admin/queues/test_record/pause", headers=bearer)
    assert redis_conn.smembers(PAUSED_KEY) == {MIRROR_LOADED.encode(), b"test_record"}
    redis_conn.flushdb()  # Redis restarted without persistence: the mirror is gone, the table is not
    job_id = add_job("test_record", {"tag": "after the flush"})
    drain(TESTING)
    assert _status(job_id) == "pending"  # the dequeue loaded the mirror from the table before popping
    assert redis_conn.smembers(PAUSED_KEY) == {MIRROR_LOADED.encode(), b"test_record"}
    client.post("/api/admin/queues/test_record/resume", headers=bearer)
    drain(TESTING)
    assert _status(job_id) == "completed"


def test_pause_and_resume_refuse_anonymous_callers_unknown_types_and_forms_without_csrf(client, admin_client, bearer):
    assert client.post("/api/admin/queues/test_record/pause").status_code == 401
    assert client.get("/api/admin/queues").status_code == 401
    assert client.post("/api/admin/job-stop/00000000-0000-0000-0000-000000000001").status_code == 401
    unknown = client.post("/api/admin/queues/nope/pause", headers=bearer)
    assert unknown.status_code == 404 and "unknown job type 'nope'" in unknown.get_json()["error"]
    assert client.post("/api/admin/queues/test_record/explode", headers=bearer).status_code == 404
    assert admin_client.post("/admin/queues/test_record/pause", data={}).status_code == 400  # no CSRF token
    assert not PausedQueue.select().exists()
    anonymous_form = client.post("/admin/queues/test_record/pause", data={})
    assert anonymous_form.status_code in (302, 400) and not PausedQueue.select().exists()


def test_the_queues_page_pauses_and_resumes_with_csrf_forms(admin_client, redis_conn):
    token = csrf_token(admin_client, "/admin/queues")
    page = admin_client.post("/admin/queues/test_record/pause", data={"csrf_token": token},
                             follow_redirects=True).get_data(as_text=True)
    row = re.search(r'<tr data-type="test_record">(.*?)</tr>', page, re.S).group(1)
    assert 'status-paused">paused' in row and "by admin admin" in row and ">Resume</button>" in row
    assert 'action="/admin/queues/test_record/resume"' in row
    other = re.search(r'<tr data-type="test_sleep">(.*?)</tr>', page, re.S).group(1)
    assert ">Pause</button>" in other and "paused" not in other
    admin_client.post("/admin/queues/test_record/resume", data={"csrf_token": token})
    assert not PausedQueue.select().exists() and redis_conn.smembers(PAUSED_KEY) == {MIRROR_LOADED.encode()}


def test_a_paused_type_is_shown_in_healthz_and_its_schedule_is_not_late(client, admin_client, settings, redis_conn,
                                                                        bearer):
    from app.schedules.service import SCHEDULER_HEARTBEAT_KEY

    redis_conn.set(SCHEDULER_HEARTBEAT_KEY, "1")
    ScheduledJob.create(name="Noop", type="noop", schedule="* * * * *", enabled=True,
                        next_run=utcnow() - timedelta(hours=1))
    before = client.get("/healthz").get_json()
    assert [late["name"] for late in before["lateSchedules"]] == ["Noop"] and before["pausedQueues"] == []
    client.post("/api/admin/queues/noop/pause", headers=bearer)
    after = client.get("/healthz").get_json()
    assert after["pausedQueues"] == ["noop"] and "lateSchedules" not in after
    schedules = client.get("/api/admin/jobs", headers=bearer).get_json()["jobs"]
    assert [(s["type"], s["late"], s["paused"]) for s in schedules] == [("noop", False, True)]
    queues = {row["type"]: row for row in client.get("/api/admin/queues", headers=bearer).get_json()["queues"]}
    assert queues["noop"]["paused"]["pausedBy"] == "API token" and queues["search_indexers"]["paused"] is None
    from prometheus_client.parser import text_string_to_metric_families

    scraped = client.get("/metrics", headers=bearer).get_data(as_text=True)
    family = next(f for f in text_string_to_metric_families(scraped) if f.name == "rmab_queue_paused")
    values = {sample.labels["type"]: sample.value for sample in family.samples}
    assert values["noop"] == 1 and values["search_indexers"] == 0
    system = admin_client.get("/admin/system").get_data(as_text=True)
    assert re.search(r'id="paused-queues">Paused queues: noop\s', system) and "Late:" not in system
    scheduled = admin_client.get("/admin/scheduled").get_data(as_text=True)
    assert "Paused: its queue is paused" in scheduled and "Late:" not in scheduled


@pytest.mark.parametrize("paused, late", [
    ((), True),                       # overdue an hour: late
    (("noop",), False),               # its type paused: waits on purpose, not late
    (("scan_plex", "test_record"), True),  # other types paused: still late
])
def test_late_reason_leaves_out_a_paused_type(paused, late):
    from app.schedules.service import late_reason

    now = utcnow()
    row = ScheduledJob(name="Noop", type="noop", schedule="* * * * *", enabled=True, next_run=now - timedelta(hours=1))
    assert (late_reason(row, None, {"maintenance": 1}, True, now, paused) is not None) is late


@pytest.mark.parametrize("key, job_type", [
    ("rq:queue:organize_files.high", "organize_files"),
    ("rq:queue:noop.low", "noop"),
    ("rq:queue:plex_recently_added_check.medium", "plex_recently_added_check"),
])
def test_the_dequeue_reads_the_job_type_from_a_queue_key(key, job_type):
    from app.jobs.dequeue import job_type_of_key

    assert job_type_of_key(key) == job_type


# --- stop: the mechanism in one process ----------------------------------------------------------------------------

def test_a_stop_fences_the_run_at_once_and_its_next_checkpoint_raises(settings, redis_conn):
    """What the worker's command thread and the run do, in one process: the row is cancelled and its token
    cleared by the stop; the command marks the run and arms the supervisor's deadline; the next JobLogger call
    (a checkpoint) raises RunStopped; and what the run writes meanwhile does not land."""
    import multiprocessing

    from app.jobs.logger import create_job_logger
    from app.jobs.stopping import STOP_GRACE_SECONDS, stop_job
    from workers.worker import JobWorker

    job_id = add_job("test_checkpoints", {})
    run = fence.begin(job_id)
    assert run is not None and _status(job_id) == "active"
    deadline = multiprocessing.get_context("fork").RawValue("d", 0.0)
    worker = JobWorker(TESTING, connection=get_redis(), kill_deadline=deadline)
    worker._running_job = type("RunningJob", (), {"id": f"job-{job_id}"})()
    try:
        outcome = stop_job(job_id, "admin alice", redis_conn)
        row = Job.get_by_id(job_id)
        assert (row.status, row.run_token, row.error_message) == ("cancelled", None,
                                                                  "Stopped by admin alice while running")
        assert outcome == {"jobId": job_id, "stoppedBy": "admin alice", "workerSignalled": False}  # no RQ worker
        assert not worker.stop_running_job("job-someone-else") and deadline.value == 0.0
        assert worker.stop_running_job(f"job-{job_id}")
        assert abs(deadline.value - (time.monotonic() + STOP_GRACE_SECONDS)) < 2
        with pytest.raises(fence.RunStopped):
            create_job_logger(job_id, "TestCheckpoints").info("one more round")
        with pytest.raises(fence.RunStopped):
            fence.checkpoint()
        assert not state.mark_completed(job_id, {"late": True}, run.token)  # fenced off
    finally:
        fence.end()
    fence.checkpoint()  # outside a run: nothing to stop
    assert Job.get_by_id(job_id).status == "cancelled"
    assert any("Stopped by admin alice while running" in message for message in event_messages(job_id))
    assert not any("one more round" in message for message in event_messages(job_id))


def test_stop_refuses_jobs_that_are_not_running(client, bearer):
    pending = add_job("test_record", {})
    refused = client.post(f"/api/admin/job-stop/{pending}", headers=bearer)
    assert refused.status_code == 409 and "only active jobs can be stopped (this one is pending)" in \
        refused.get_json()["error"]
    assert client.post("/api/admin/job-stop/not-a-uuid", headers=bearer).status_code == 404
    assert _status(pending) == "pending"


def test_the_queues_page_lists_each_live_worker_with_its_job_and_a_stop_button(admin_client, redis_conn):
    from workers.worker import JobWorker

    book = Audiobook.create(title=HOSTILE, author="A")
    request = Request.create(audiobook=book, status="processing")
    job_id = add_job("test_record", {"requestId": str(request.id)})
    assert state.mark_active(job_id, "token", 30)
    Job.update(started_at=utcnow() - timedelta(seconds=75)).where(Job.id == job_id).execute()
    worker = JobWorker(TESTING, connection=get_redis(), name=f"testing-somehost-{os.getpid()}-0")
    worker.register_birth()
    worker.set_current_job_id(f"job-{job_id}")
    redis_conn.hset(f"rq:job:job-{job_id}", "worker_name", worker.name)  # as RQ records it when the run starts
    listener = redis_conn.pubsub()
    listener.subscribe(worker.pubsub_channel_name)
    try:
        page = admin_client.get("/admin/queues").get_data(as_text=True)
        row = re.search(rf'<tr data-worker="{worker.name}" data-group="testing">(.*?)</tr>', page, re.S).group(1)
        assert f"<td>{worker.hostname}</td><td>{os.getpid()}</td>" in row
        assert f'href="/admin/jobs/{job_id}">Test Record</a>' in row and "status-active" in row
        assert HOSTILE not in page and "&lt;script&gt;" in row  # the book's title, escaped
        assert re.search(r'class="running-for">7\d s<', row)
        assert f'action="/admin/jobs/{job_id}/stop"' in row and ">Stop</button>" in row
        listed = admin_client.get("/api/admin/queues").get_json()["workers"]
        mine = next(w for w in listed if w["name"] == worker.name)
        assert (mine["group"], mine["pid"], mine["job"]["id"], mine["job"]["requestId"]) == (
            "testing", os.getpid(), job_id, str(request.id))

        job_page = admin_client.get(f"/admin/jobs/{job_id}").get_data(as_text=True)
        assert f'action="/admin/jobs/{job_id}/stop"' in job_page and ">Stop</button>" in job_page
        token = csrf_token(admin_client, "/admin/queues")
        done = admin_client.post(f"/admin/jobs/{job_id}/stop", data={"csrf_token": token, "next": "queues"})
        assert done.status_code == 302 and done.headers["Location"].endswith("/admin/queues")
        assert Job.get_by_id(job_id).error_message == "Stopped by admin admin while running"
        message = wait_for(lambda: listener.get_message(ignore_subscribe_messages=True, timeout=0.5), 5,
                           message="the stop-job command on the worker's channel")
        assert b'"stop-job"' in message["data"] and f"job-{job_id}".encode() in message["data"]
    finally:
        listener.close()
        worker.register_death()


# --- real worker processes -----------------------------------------------------------------------------------------

def _start_supervised_pool(env, tmp_path, name):
    return start_process(["tests/run_pool.py", "testing", "--size", "1"], env, tmp_path / f"{name}.log")


def _testing_worker(redis_conn, not_pid: int | None = None) -> Worker:
    def registered():
        found = [w for w in Worker.all(connection=redis_conn) if w.name.startswith("testing-") and w.pid != not_pid]
        return found[0] if found else None

    return wait_for(registered, 60, interval=0.2, message="a testing worker to register")


@pytest.mark.slow
def test_with_a_live_worker_a_paused_queue_waits_others_run_and_resume_runs_it(settings_env, client, redis_conn,
                                                                                tmp_path, bearer):
    """The blocking dequeue of a real worker: a job of a type paused while the worker waited in BLPOP is handed
    back, others run, Resume runs it within a second or two; and a FLUSH of Redis does not unpause."""
    pool = _start_supervised_pool(settings_env[1], tmp_path, "pause")
    try:
        _testing_worker(redis_conn)
        warm = add_job("test_record", {"tag": "warm"})
        wait_for(lambda: _status(warm) == "completed", 30, message="the worker to run a job")
        time.sleep(0.5)  # the worker is blocked in its dequeue again, on every queue of its group
        client.post("/api/admin/queues/test_record/pause", headers=bearer)
        paused_job = add_job("test_record", {"tag": "paused"})
        other = add_job("test_sleep", {"seconds": 0})
        wait_for(lambda: _status(other) == "completed", 30, message="the other type's job")
        time.sleep(2)
        assert _status(paused_job) == "pending" and redis_conn.lrange("test:order", 0, -1) == [b"warm"]

        redis_conn.flushdb()  # the mirror and the queues are gone; the table still says paused
        flushed = add_job("test_record", {"tag": "after the flush"})
        time.sleep(3)
        assert _status(flushed) == "pending"
        started = time.monotonic()
        client.post("/api/admin/queues/test_record/resume", headers=bearer)
        wait_for(lambda: _status(flushed) == "completed", 30, interval=0.05, message="the resumed job")
        resumed_after = time.monotonic() - started
    finally:
        stop_process(pool)
    assert resumed_after < 5, resumed_after
    assert _status(paused_job) == "pending"  # its queue entry went with the flush; recovery re-enqueues it


@pytest.mark.slow
def test_a_cooperative_job_stops_at_its_next_checkpoint_and_its_worker_goes_on(settings_env, client, redis_conn,
                                                                                tmp_path, bearer):
    pool = _start_supervised_pool(settings_env[1], tmp_path, "cooperative")
    try:
        worker = _testing_worker(redis_conn)
        job_id = add_job("test_checkpoints", {})
        wait_for(lambda: redis_conn.get(f"test:rounds:{job_id}"), 30, message="the job's first rounds")
        answer = client.post(f"/api/admin/job-stop/{job_id}", headers=bearer).get_json()
        assert answer["workerSignalled"] is True and answer["stoppedBy"] == "API token"
        stopped_at = time.monotonic()
        rounds = wait_for(lambda: _settled(redis_conn, f"test:rounds:{job_id}"), 10, interval=0.3,
                          message="the loop to stop")
        assert time.monotonic() - stopped_at < 3
        next_job = add_job("test_record", {"tag": "next"})
        wait_for(lambda: _status(next_job) == "completed", 30, message="the next job on the same worker")
        same = [w for w in Worker.all(connection=redis_conn) if w.name.startswith("testing-")]
        assert [w.pid for w in same] == [worker.pid]  # not killed: it stopped the run itself
    finally:
        stop_process(pool)
    row = Job.get_by_id(job_id)
    assert (row.status, row.attempts, row.error_message) == ("cancelled", 1, "Stopped by API token while running")
    assert int(redis_conn.get(f"test:rounds:{job_id}")) == rounds  # no round after the stop, no retry
    events = event_messages(job_id)
    assert events[-1].startswith("Stopped by API token while running")
    assert len([m for m in events if m.startswith("round ")]) < rounds  # rounds logged after the stop: refused


def _settled(connection, key: str) -> int | None:
    """The counter's value once it has not moved for 0.3 s."""
    first = int(connection.get(key) or 0)
    time.sleep(0.3)
    return first if int(connection.get(key) or 0) == first else None


@pytest.mark.slow
def test_a_job_that_ignores_checkpoints_has_its_worker_killed_after_30_s_and_restarted(settings_env, client,
                                                                                      redis_conn, tmp_path, bearer):
    log = tmp_path / "stuck.log"
    pool = start_process(["tests/run_pool.py", "testing", "--size", "1"], settings_env[1], log)
    try:
        _testing_worker(redis_conn)
        job_id = add_job("test_sleep", {"seconds": 110})  # one time.sleep: no checkpoint until it wakes
        wait_for(lambda: redis_conn.get(f"test:sleeping:{job_id}"), 30, message="the job to start sleeping")
        worker_pid = int(redis_conn.get(f"test:pid:{job_id}"))
        stopped_at = time.monotonic()
        client.post(f"/api/admin/job-stop/{job_id}", headers=bearer)
        assert _status(job_id) == "cancelled"  # at once, long before the worker goes
        wait_for(lambda: not _alive(worker_pid), 45, interval=0.2, message="the supervisor to kill the worker")
        killed_after = time.monotonic() - stopped_at
        _testing_worker(redis_conn, not_pid=worker_pid)  # the supervisor started a new one
        next_job = add_job("test_record", {"tag": "after the kill"})
        wait_for(lambda: _status(next_job) == "completed", 30, message="a job on the restarted worker")
        assert pool.poll() is None
    finally:
        stop_process(pool)
    print(f"stopped job's worker killed {killed_after:.1f} s after the stop")
    assert 29 <= killed_after < 35, killed_after
    row = Job.get_by_id(job_id)
    assert (row.status, row.attempts, int(redis_conn.get(f"test:runs:{job_id}"))) == ("cancelled", 1, 1)
    assert "run 1 finished" not in " ".join(event_messages(job_id))
    text = log.read_text()
    assert "is still running past its deadline; killing the worker" in text and "was killed by SIGKILL" in text


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie is dead, only not yet reaped
    except FileNotFoundError:
        return False


def test_in_the_browser_pause_stop_and_resume_from_the_queues_page(page, live_url, settings_env, redis_conn, tmp_path):
    from playwright.sync_api import expect

    pool = _start_supervised_pool(settings_env[1], tmp_path, "browser")
    try:
        _testing_worker(redis_conn)
        login(page, live_url)
        page.goto(f"{live_url}/admin/queues")
        page.click('tr[data-type="test_record"] button.pause')
        expect(page.locator('tr[data-type="test_record"] .status-paused')).to_have_text("paused")
        waiting = add_job("test_record", {"tag": "browser"})
        running = add_job("test_checkpoints", {})
        wait_for(lambda: redis_conn.get(f"test:rounds:{running}"), 30, message="the job to run")
        page.goto(f"{live_url}/admin/queues")
        worker_row = page.locator('#live-workers tr[data-group="testing"]')
        expect(worker_row).to_contain_text("Test Checkpoints")
        screenshot(page, "queues-paused-and-running")
        worker_row.locator("button.stop").click()
        expect(page.locator("body")).to_contain_text("Job stopped")
        wait_for(lambda: _status(running) == "cancelled", 10, message="the stopped job")
        time.sleep(1)
        assert _status(waiting) == "pending"
        page.click('tr[data-type="test_record"] button.resume')
        expect(page.locator('tr[data-type="test_record"] button.pause')).to_be_visible()
        wait_for(lambda: _status(waiting) == "completed", 10, message="the resumed job")
    finally:
        stop_process(pool)

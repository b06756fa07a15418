"""Notifications with Apprise: NOTIFY_URLS and the notification_targets table, one send_notification job per event
and target, counted at a real loopback receiver (Apprise's json://), retried with back-off, never holding up the
pipeline, tokens never in events, logs or pages; the page and API under /admin and /api/admin/notifications."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from app.jobs.queues import queue_names_for_group
from app.models import Job, JobEvent, NotificationTarget, Request, utcnow
from app.notifications.targets import EVENTS, TargetError, parse_notify_urls, redacted_url, url_secrets

from builders import make_request
from fakes.notify_receiver import PASSWORD, TOKEN
from helpers import csrf_token, drain, start_process, stop_process, wait_for

NOTIFY_QUEUES = queue_names_for_group("send_notification")


def _load_apprise_plugins() -> None:
    """Apprise loads its 100+ plugins on the first URL a process adds (about 1.5 s here, once per process, as in
    a worker's first send): done at collection, so that it is not charged to whichever test sends first."""
    from app.integrations.notifier import accepts

    accepts("json://127.0.0.1/warm-up")


_load_apprise_plugins()


def _target(url: str, *events: str) -> NotificationTarget:
    return NotificationTarget.create(url=url, events=list(events or EVENTS))


def _send_all() -> None:
    drain(NOTIFY_QUEUES)


def _notification_jobs() -> list[Job]:
    return list(Job.select().where(Job.type == "send_notification").order_by(Job.created_at))


def _no_token_stored() -> None:
    """No token of a target in any job row or event (payloads, results, errors, messages, metadata)."""
    texts = [json.dumps([j.payload, j.result, j.error_message, j.stack_trace]) for j in Job.select()]
    texts += [json.dumps([e.message, e.metadata]) for e in JobEvent.select()]
    for text in texts:
        assert TOKEN not in text and PASSWORD not in text, text


# --- plain data: NOTIFY_URLS, secret parts, redacted forms ------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("", ()),
    ("json://h/p", (("json://h/p", tuple(EVENTS)),)),
    ("json://h/p|failed,grabbed", (("json://h/p", ("grabbed", "failed")),)),
    (" json://h/p | all ;\nntfys://ntfy.sh/topic|warn ", (("json://h/p", tuple(EVENTS)),
                                                         ("ntfys://ntfy.sh/topic", ("warn",)))),
    ("form://h/a|b|job_failed", (("form://h/a|b", ("job_failed",)),)),  # the events follow the last |
])
def test_notify_urls_syntax(raw, expected):
    assert parse_notify_urls(raw) == expected


@pytest.mark.parametrize("raw, problem", [
    ("json://h/p|grabed", "entry 1: unknown event(s) 'grabed'"),
    ("json://h/p;not a url", "entry 2: the URL contains spaces"),
    ("json://h/p;h/p", "entry 2: not an Apprise URL"),
    ("json://h/p|", "entry 1: choose at least one event"),
])
def test_bad_notify_urls_are_refused_naming_the_entry_not_its_text(raw, problem):
    with pytest.raises(TargetError) as refused:
        parse_notify_urls(raw)
    assert str(refused.value).startswith(problem)


def test_a_bad_notify_urls_stops_the_start_without_showing_it(tmp_path):
    from app.config import SettingsError, load_settings

    with pytest.raises(SettingsError) as refused:
        load_settings({"NOTIFY_URLS": f"json://u:{PASSWORD}@h/p|nope"}, env_file=None)
    assert "NOTIFY_URLS=<hidden>: entry 1: unknown event(s) 'nope'" in str(refused.value)
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize("url, shown", [
    (f"json://user:{PASSWORD}@127.0.0.1:8080/hook/{TOKEN}", "json://user:[REDACTED]@127.0.0.1:8080/hook/[REDACTED]"),
    ("json://nas/hook", "json://nas/hook"),  # nothing secret: shown as written
    ("discord://123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "discord://[REDACTED]/[REDACTED]"),
    ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/987654321", "tgram://[REDACTED]/987654321"),
    ("ntfy://my-private-topic", "ntfy://[REDACTED]"),
    ("ntfys://ntfy.sh/alerts", "ntfys://ntfy.sh/alerts"),
    ("pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGeDzbMh1GGlmg2zLQqwBbyHbXjwn", "pover://[REDACTED]@[REDACTED]"),
    ("mailto://me:p%40ss@example.org", "mailto://me:[REDACTED]@example.org"),
    ("gotifys://gotify.example.org/AbCdEf123456?priority=high", "gotifys://gotify.example.org/[REDACTED]?priority=high"),
])
def test_urls_are_shown_with_every_token_redacted(url, shown):
    assert redacted_url(url) == shown


def test_notify_urls_tokens_are_configured_secrets(tmp_path):
    from app.config import load_settings
    from app.redaction import redact_text

    url = f"json://user:{PASSWORD}@127.0.0.1:9/hook/{TOKEN}"
    settings = load_settings({"NOTIFY_URLS": f"{url}|failed"}, env_file=None)
    assert {PASSWORD, TOKEN, url} <= set(settings.secret_values())
    said = redact_text(f"POST to {url} failed; token {TOKEN}", settings.secret_values())
    assert TOKEN not in said and PASSWORD not in said
    assert set(url_secrets(url)) == {PASSWORD, TOKEN}


# --- one message per event, at a real receiver ----------------------------------------------------------

def test_each_request_event_sends_exactly_one_message_to_the_targets_that_want_it(settings, redis_conn,
                                                                                   notify_receiver):
    from app.audiobook_requests.state import RequestStatus, transition

    everything, failures_only = notify_receiver(), notify_receiver()
    _target(everything.url())
    _target(failures_only.url(), "failed")
    failing = make_request("pending", title="Elantris")
    warned = make_request("processing", title="Warbreaker")
    found = make_request("failed", title="Mistborn")

    assert transition(failing.id, RequestStatus.FAILED, error_message="no release found")
    assert not transition(failing.id, RequestStatus.FAILED, error_message="again")  # not entered again: no message
    assert transition(warned.id, RequestStatus.WARN, error_message="no audio files in the download")
    assert transition(found.id, RequestStatus.AVAILABLE)
    _send_all()

    sent = everything.messages()
    assert sorted((m["type"], m["title"]) for m in sent) == [
        ("failure", "Request failed: Elantris by Brandon Sanderson"),
        ("success", "Available in Plex: Mistborn by Brandon Sanderson"),
        ("warning", "Request needs attention: Warbreaker by Brandon Sanderson")]
    assert next(m for m in sent if m["type"] == "failure")["message"] == \
        "Elantris by Brandon Sanderson: no release found"
    assert [m["title"] for m in failures_only.messages()] == ["Request failed: Elantris by Brandon Sanderson"]
    jobs = _notification_jobs()
    assert len(jobs) == 4 and {j.status for j in jobs} == {"completed"} and {j.priority for j in jobs} == {5}
    assert all(j.request_id is None for j in jobs)  # a request's step jobs stay its latest (retry, reconciler)
    _no_token_stored()


def test_messages_of_a_transaction_are_queued_once_it_committed_and_not_at_all_when_it_failed(settings, redis_conn,
                                                                                            notify_receiver):
    from app.audiobook_requests.state import RequestStatus, transition
    from app.db import database
    from app.notifications.events import held_until_commit

    _target(notify_receiver().url())
    kept, rolled_back = make_request("failed", title="Elantris"), make_request("failed", title="Warbreaker")
    with held_until_commit(), database.obj.atomic():
        assert transition(kept.id, RequestStatus.AVAILABLE)
        assert _notification_jobs() == []  # not inside: a worker could run it before the commit and find no row
    assert len(_notification_jobs()) == 1
    with pytest.raises(RuntimeError), held_until_commit(), database.obj.atomic():
        assert transition(rolled_back.id, RequestStatus.AVAILABLE)
        raise RuntimeError("the batch failed")
    assert Request.get_by_id(rolled_back.id).status == "failed" and len(_notification_jobs()) == 1


def test_a_book_found_in_plex_sends_one_available_message(use_settings, redis_conn, notify_receiver):
    from app.jobs.service import add_job

    from fakes.plex import FakePlex

    target = notify_receiver()
    _target(target.url(), "available")
    plex = FakePlex().start()
    try:
        use_settings(PLEX_URL=plex.url, PLEX_TOKEN=plex.token, PLEX_LIBRARY_ID=plex.section)
        plex.items = [plex.album("Elantris", "Brandon Sanderson"), plex.album("Warbreaker", "Brandon Sanderson")]
        for title in ("Elantris", "Warbreaker"):
            make_request("downloaded", title=title)
        add_job("scan_plex", {})
        drain(queue_names_for_group("scan_plex"))
    finally:
        plex.stop()
    _send_all()
    assert sorted(m["title"] for m in target.messages()) == ["Available in Plex: Elantris by Brandon Sanderson",
                                                             "Available in Plex: Warbreaker by Brandon Sanderson"]


def test_notify_urls_targets_receive_their_events(use_settings, redis_conn, notify_receiver):
    from app.audiobook_requests.state import RequestStatus, transition

    target = notify_receiver()
    use_settings(NOTIFY_URLS=f"{target.url()}|warn; {target.url('other')}|available")
    request = make_request("processing", title="Elantris")
    assert transition(request.id, RequestStatus.WARN, error_message="nothing to import")
    _send_all()
    assert [(r["path"], json.loads(r["body"])["type"]) for r in target.server.requests] == [
        (f"/hook/{TOKEN}", "warning")]
    _no_token_stored()


def test_no_target_no_job(settings, redis_conn):
    from app.audiobook_requests.state import RequestStatus, transition

    assert transition(make_request("pending", title="Elantris").id, RequestStatus.FAILED, error_message="x")
    assert _notification_jobs() == []


def test_a_job_failing_its_last_attempt_sends_one_message_not_one_per_attempt(use_settings, redis_conn,
                                                                               notify_receiver):
    from app.jobs.service import add_job

    import jobtypes  # noqa: F401

    use_settings(JOB_BACKOFF_SECONDS=0)
    target = notify_receiver()
    _target(target.url(), "job_failed")
    job_id = add_job("test_fail", {"tag": f"token={TOKEN}"}, max_attempts=3)
    drain(queue_names_for_group("testing"))
    assert Job.get_by_id(job_id).status == "failed" and Job.get_by_id(job_id).attempts == 3
    _send_all()
    sent = target.messages()
    assert len(sent) == 1 and sent[0]["title"] == "Job failed: test_fail" and sent[0]["type"] == "failure"
    assert f"Job {job_id} (test_fail) failed after its last attempt: RuntimeError: boom for token=[REDACTED]" \
        == sent[0]["message"]


@pytest.mark.slow
def test_a_failing_target_is_retried_with_back_off_and_never_holds_up_the_pipeline(use_settings, redis_conn,
                                                                                     notify_receiver):
    from app.audiobook_requests.state import RequestStatus, transition

    use_settings(JOB_BACKOFF_SECONDS=1)
    flaky, down = notify_receiver(answers=(500, 503)), notify_receiver(answers=(500,) * 10)
    _target(flaky.url(), "failed", "job_failed")
    _target(down.url(), "failed", "job_failed")
    request = make_request("pending", title="Elantris")
    assert transition(request.id, RequestStatus.FAILED, error_message="no release")  # queued, not sent: nothing waited
    assert Request.get_by_id(request.id).status == "failed" and flaky.messages() == [] == down.messages()
    _send_all()

    assert len(flaky.messages()) == 3  # refused twice, delivered on the third attempt: one message arrived
    assert len(down.messages()) == 5  # every attempt refused
    by_outcome = {j.status: j for j in _notification_jobs()}
    assert set(by_outcome) == {"completed", "failed"} and len(_notification_jobs()) == 2
    failed = by_outcome["failed"]
    assert failed.attempts == 5 and "delivery failed" in failed.error_message and "error=500" in failed.error_message
    events = [e.message for e in JobEvent.select().where(JobEvent.job == failed.id).order_by(JobEvent.created_at)]
    assert any("Retrying in 1 s" in m for m in events) and any("Retrying in 8 s" in m for m in events)
    assert len(down.messages()) == 5  # a failed notification sends no "job failed" message about itself
    _no_token_stored()


@pytest.mark.slow
def test_the_notification_worker_sends_from_a_forked_work_horse(settings_env, redis_conn, notify_receiver, tmp_path):
    """Apprise's plugins (about 30 MB) live in a work-horse that exits after its message, not in the worker."""
    from rq import Worker

    from app.audiobook_requests.state import RequestStatus, transition
    from workers.worker import ForkJobWorker, JobWorker, worker_class

    from proc_table import children

    assert worker_class("send_notification") is ForkJobWorker and worker_class("search_indexers") is JobWorker
    target = notify_receiver(delay=2)
    _target(target.url())
    pool = start_process(["tests/run_pool.py", "send_notification", "--size", "1"], settings_env[1],
                         tmp_path / "pool.log")
    try:
        worker = wait_for(lambda: Worker.all(connection=redis_conn), 30, message="the worker to register")[0]
        assert transition(
            make_request("pending", title="Elantris").id, RequestStatus.FAILED, error_message="no release"
        )
        horse = wait_for(lambda: children(worker.pid), 30, message="a work-horse sending the message")
        assert len(horse) == 1
        wait_for(lambda: [j.status for j in _notification_jobs()] == ["completed"], 30, message="the job to end")
        assert len(target.messages()) == 1
        wait_for(lambda: children(worker.pid) == [], 10, message="the work-horse to exit")
    finally:
        stop_process(pool)


def test_a_target_removed_before_its_job_runs_is_skipped(settings, redis_conn, notify_receiver):
    from app.audiobook_requests.state import RequestStatus, transition

    target = notify_receiver()
    row = _target(target.url())
    assert transition(make_request("pending", title="Elantris").id, RequestStatus.FAILED, error_message="x")
    row.delete_instance()
    _send_all()
    assert target.messages() == [] and _notification_jobs()[0].result["skipped"] is True


def test_queueing_never_raises_into_the_pipeline(settings, redis_conn, notify_receiver, monkeypatch):
    from app.audiobook_requests.state import RequestStatus, transition
    from app.jobs import service

    _target(notify_receiver().url())

    def refused(*args, **kwargs):
        raise service.EnqueueFailed("Redis refused the job")

    monkeypatch.setattr(service, "add_job", refused)
    request = make_request("pending", title="Elantris")
    assert transition(request.id, RequestStatus.FAILED, error_message="x")
    assert Request.get_by_id(request.id).status == "failed"


def test_tokens_never_reach_the_process_log(settings, redis_conn, notify_receiver, process_log):
    from app.audiobook_requests.state import RequestStatus, transition

    down = notify_receiver(answers=(500,) * 10)
    _target(down.url(), "failed")
    assert transition(make_request("pending", title="Elantris").id, RequestStatus.FAILED, error_message="x")
    drain(NOTIFY_QUEUES, until=lambda: len(down.messages()) >= 1)  # the first delivery, refused
    logged = process_log.getvalue()
    assert "Attempt failed: TransientServiceError: Notification: delivery failed" in logged
    assert TOKEN not in logged and PASSWORD not in logged


# --- schedules late, integrations down and back up (the scheduler) -----------------------------------

def test_a_late_schedule_is_announced_once_and_again_after_it_caught_up(settings, redis_conn, notify_receiver):
    from app.models import ScheduledJob
    from app.notifications.watch import announce_late_schedules
    from app.schedules.defaults import ensure_default_schedules

    target = notify_receiver()
    _target(target.url(), "schedule_late")
    ensure_default_schedules(settings)
    ScheduledJob.update(enabled=False).execute()
    row = ScheduledJob.get(ScheduledJob.type == "cleanup_job_history")
    overdue = utcnow() - timedelta(minutes=5)
    ScheduledJob.update(enabled=True, next_run=overdue).where(ScheduledJob.id == row.id).execute()

    assert len(announce_late_schedules(redis_conn)) == 1
    assert announce_late_schedules(redis_conn) == []  # still late: said once
    ScheduledJob.update(next_run=utcnow() + timedelta(minutes=5)).where(ScheduledJob.id == row.id).execute()
    assert announce_late_schedules(redis_conn) == []
    ScheduledJob.update(next_run=overdue).where(ScheduledJob.id == row.id).execute()
    assert len(announce_late_schedules(redis_conn)) == 1  # late again: a new message
    _send_all()
    sent = target.messages()
    assert len(sent) == 2 and sent[0]["title"] == f"Schedule late: {row.name}" and sent[0]["type"] == "warning"
    assert "has not started: the scheduler is behind" in sent[0]["message"]


def test_the_scheduler_announces_an_integration_down_then_back_up_once_each(use_settings, redis_conn, notify_receiver,
                                                                           prowlarr):
    from app.schedules.process import SchedulerProcess

    target = notify_receiver()
    _target(target.url(), "integration_down", "integration_up")
    use_settings(PROWLARR_URL="http://127.0.0.1:1", PROWLARR_API_KEY=prowlarr.api_key)
    process = SchedulerProcess()
    process.run_integration_checks()
    process.run_integration_checks()  # still down: nothing new
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key)
    process.run_integration_checks()
    process.run_integration_checks()
    _send_all()
    sent = [(m["type"], m["title"]) for m in target.messages()]
    assert sent == [("failure", "Prowlarr is down"), ("success", "Prowlarr is back up")]
    assert prowlarr.api_key not in json.dumps(target.messages())


def test_integration_changes_table():
    from app.integrations.health import CheckResult
    from app.notifications.watch import integration_changes, late_changes

    def result(ok, configured=True):
        return CheckResult("plex", "Plex", configured=configured, ok=ok)

    assert integration_changes({}, [result(True)]) == []  # first sight, up: no news
    assert [c[1] for c in integration_changes({}, [result(False)])] == ["down"]
    assert [c[1] for c in integration_changes({"plex": "down"}, [result(True)])] == ["up"]
    assert integration_changes({"plex": "down"}, [result(False)]) == []
    assert integration_changes({"plex": "up"}, [result(None)]) == []  # not checked: no change
    assert integration_changes({"plex": "up"}, [result(None, configured=False)]) == []
    assert late_changes({"a": "x", "b": "y"}, {"b": "", "c": ""}) == (["c"], ["a"])


# --- the grab, through a real download client ------------------------------------------------------------

@pytest.mark.slow
def test_a_grab_sends_one_message_naming_the_release(daemon, prowlarr, use_settings, redis_conn, notify_receiver,
                                                     client, bearer):
    import os

    from app.integrations.torrentfile import make_torrent

    from fakes.prowlarr import FakeRelease

    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key, DOWNLOAD_CLIENT=daemon.kind,
                 DOWNLOAD_CLIENT_URL=daemon.url, DOWNLOAD_CLIENT_USERNAME=daemon.username,
                 DOWNLOAD_CLIENT_PASSWORD=daemon.password, DOWNLOAD_DIR=str(daemon.download_dir))
    target = notify_receiver()
    _target(target.url(), "grabbed")
    title = f"Elantris {uuid.uuid4().hex[:6]}"
    folder = daemon.download_dir / f"Brandon Sanderson - {title} [M4B]"
    folder.mkdir()
    (folder / f"{title}.m4b").write_bytes(os.urandom(100_000))
    release = f"Brandon Sanderson - {title} [M4B]"
    prowlarr.releases = [FakeRelease(release, 300 * 1024 * 1024, seeders=9, torrent=make_torrent(folder))]
    created = client.post("/api/requests", json={"title": title, "author": "Brandon Sanderson"}, headers=bearer)
    assert created.status_code == 201
    drain(queue_names_for_group("search_indexers"))
    drain(queue_names_for_group("download_torrent"))
    assert Request.get_by_id(created.get_json()["request"]["id"]).status == "downloading"
    _send_all()
    sent = target.messages()
    assert len(sent) == 1 and sent[0]["title"] == f"Grabbed: {title} by Brandon Sanderson"
    assert sent[0]["message"].startswith(f"{release} from ") and sent[0]["message"].endswith(f"sent to {daemon.kind}")


# --- the page and the API ----------------------------------------------------------------------------

def test_the_api_adds_lists_changes_and_removes_targets_redacted(client, redis_conn, notify_receiver, bearer):
    target = notify_receiver()
    added = client.post("/api/admin/notifications", json={"url": target.url(), "events": ["failed", "warn"]},
                        headers=bearer)
    assert added.status_code == 201, added.get_json()
    shown = added.get_json()["target"]
    assert shown["url"] == f"json://user:[REDACTED]@127.0.0.1:{target.port}/hook/[REDACTED]"
    assert shown["events"] == ["failed", "warn"] and shown["source"] == "database"
    assert NotificationTarget.get_by_id(shown["id"]).url == target.url()

    listed = client.get("/api/admin/notifications", headers=bearer)
    assert TOKEN not in listed.get_data(as_text=True) and PASSWORD not in listed.get_data(as_text=True)
    assert [t["id"] for t in listed.get_json()["targets"]] == [shown["id"]]
    assert set(listed.get_json()["events"]) == set(EVENTS)

    changed = client.put(f"/api/admin/notifications/{shown['id']}", json={"events": "all"}, headers=bearer)
    assert changed.get_json()["target"]["events"] == list(EVENTS)

    tested = client.post(f"/api/admin/notifications/{shown['id']}/test", headers=bearer)
    assert tested.status_code == 200 and tested.get_json()["success"] is True
    assert [m["title"] for m in target.messages()] == ["ReadMeABook test notification"]

    assert client.delete(f"/api/admin/notifications/{shown['id']}", headers=bearer).status_code == 200
    assert NotificationTarget.select().count() == 0
    assert client.delete(f"/api/admin/notifications/{shown['id']}", headers=bearer).status_code == 404


@pytest.mark.parametrize("body, status, error", [
    ({"url": "not a url"}, 400, "the URL contains spaces"),
    ({"url": "nosuchscheme://host/x"}, 400, "Apprise cannot use this URL"),
    ({"url": "json://host/x", "events": ["sometimes"]}, 400, "unknown event(s) 'sometimes'"),
    ({"url": "json://host/x", "events": []}, 400, "choose at least one event"),
    ({"url": 5}, 400, "the URL must be a string"),
    (["json://host/x"], 400, "body must be a JSON object"),
])
def test_the_api_refuses_bad_targets_clearly(client, redis_conn, body, status, error, bearer):
    answer = client.post("/api/admin/notifications", json=body, headers=bearer)
    assert answer.status_code == status and error in answer.get_json()["error"]
    assert NotificationTarget.select().count() == 0


def test_a_url_already_a_target_is_refused(client, redis_conn, bearer):
    url = "json://127.0.0.1:9/hook"
    assert client.post("/api/admin/notifications", json={"url": url}, headers=bearer).status_code == 201
    assert client.post("/api/admin/notifications", json={"url": url}, headers=bearer).status_code == 409


def test_anonymous_callers_are_refused(client, redis_conn):
    assert client.get("/api/admin/notifications").status_code == 401
    assert client.post("/api/admin/notifications", json={"url": "json://h/x"}).status_code == 401
    page = client.get("/admin/notifications")
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def test_the_page_lists_adds_edits_tests_and_removes_with_csrf(admin_client, redis_conn, notify_receiver, use_settings):
    target = notify_receiver()
    env_url = f"json://127.0.0.1:{target.port}/from-env/Env0Token0123456789"
    use_settings(NOTIFY_URLS=f"{env_url}|failed")
    token = csrf_token(admin_client, "/admin/notifications")
    assert admin_client.post("/admin/notifications", data={"url": target.url(), "events": "warn"}).status_code == 400
    added = admin_client.post("/admin/notifications", data={"csrf_token": token, "url": target.url(),
                                                             "events": ["failed", "available"]})
    assert added.status_code == 302
    row = NotificationTarget.get()
    assert row.events == ["available", "failed"]

    page = admin_client.get("/admin/notifications").get_data(as_text=True)
    assert TOKEN not in page and PASSWORD not in page and "Env0Token0123456789" not in page
    assert f"json://user:[REDACTED]@127.0.0.1:{target.port}/hook/[REDACTED]" in page
    assert f"json://127.0.0.1:{target.port}/from-env/[REDACTED]" in page
    assert 'href="/admin/notifications"' in page  # in the navigation

    admin_client.post(f"/admin/notifications/{row.id}/events", data={"csrf_token": token, "events": ["grabbed"]})
    assert NotificationTarget.get_by_id(row.id).events == ["grabbed"]
    nothing = admin_client.post(f"/admin/notifications/{row.id}/events", data={"csrf_token": token},
                                follow_redirects=True)
    assert "Not saved: choose at least one event" in nothing.get_data(as_text=True)

    tested = admin_client.post(f"/admin/notifications/{row.id}/test", data={"csrf_token": token},
                               follow_redirects=True)
    assert "Test message sent to json://user:[REDACTED]@" in tested.get_data(as_text=True)
    env_key = f"env:{__import__('hashlib').sha256(env_url.encode()).hexdigest()[:16]}"
    admin_client.post(f"/admin/notifications/{env_key}/test", data={"csrf_token": token})
    assert [r["path"] for r in target.server.requests] == [f"/hook/{TOKEN}", "/from-env/Env0Token0123456789"]

    bad = admin_client.post("/admin/notifications", data={"csrf_token": token, "url": "nosuch://x",
                                                            "events": "failed"},
                            follow_redirects=True)
    assert "Not added: Apprise cannot use this URL" in bad.get_data(as_text=True)
    assert admin_client.post(f"/admin/notifications/{row.id}/remove", data={"csrf_token": token}).status_code == 302
    assert NotificationTarget.select().count() == 0
    assert admin_client.post(f"/admin/notifications/{row.id}/remove", data={"csrf_token": token}).status_code == 404


def test_a_stored_targets_tokens_are_redacted_in_events_once_the_process_has_read_it(settings, redis_conn,
                                                                                     process_log):
    from app.jobs.logger import create_job_logger
    from app.jobs.service import add_job
    from app.notifications.store import all_targets

    url = f"ntfy://my0private0topic/x?token={TOKEN}&password={PASSWORD}"
    _target(url)
    assert [t.display for t in all_targets()] == ["ntfy://[REDACTED]/x?token=[REDACTED]&password=[REDACTED]"]
    job_id = add_job("noop")
    create_job_logger(job_id, "Notification").warning(f"could not reach {url} (topic my0private0topic)")
    message = JobEvent.get(JobEvent.job == job_id).message
    assert "my0private0topic" not in message and TOKEN not in message and message.startswith("could not reach ntfy://")
    logged = process_log.getvalue()
    assert "could not reach ntfy://" in logged and "my0private0topic" not in logged and TOKEN not in logged
    _no_token_stored()


@pytest.mark.slow
def test_a_run_lost_on_its_last_attempt_sends_the_job_failed_message_too(use_settings, redis_conn, notify_receiver):
    """The lease sweep's final failure (a run lost with Redis, its worker dead) is a job failed after its last
    attempt like any other: one message, as the callbacks' final failure sends."""
    from datetime import timedelta

    from app.jobs.recovery import sweep_expired_leases
    from app.models import utcnow

    target = notify_receiver()
    _target(target.url(), "job_failed")
    long_ago = utcnow() - timedelta(minutes=10)
    lost = Job.create(type="noop", status="active", attempts=3, max_attempts=3, payload={}, rq_job_id="gone-1",
                      started_at=long_ago, heartbeat_at=long_ago, run_token="t")
    assert sweep_expired_leases(redis_conn) == [str(lost.id)]
    assert Job.get_by_id(lost.id).status == "failed"
    _send_all()
    sent = target.messages()
    assert len(sent) == 1 and sent[0]["title"] == "Job failed: noop", sent

"""Logs of a running home server: quiet when idle, one line per finished job, key=value or JSON lines.

The stack tests run the project's own Procfile under `honcho start` (whatever its lines are) against
the test PostgreSQL and Redis, and read what honcho prints, the way an admin reads `honcho start`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app.jobs.logger import create_job_logger
from app.jobs.queues import queue_names_for_type
from app.jobs.service import add_job
from app.logging_setup import (
    QuietChatter,
    StructuredFormatter,
    format_keyvalue,
    quieted,
    record_fields,
)
from app.models import Job
from workers.worker import attempt_number, end_status, failure_reason

import jobtypes  # noqa: F401  (test_fail, test_permanent)
from helpers import ROOT, drain, wait_for

SETTLE_SECONDS = 10  # start-up lines (pool and gunicorn banners) are over this long after /healthz is ok
IDLE_WINDOW_SECONDS = 60
IDLE_LINES_ALLOWED = 5  # per minute, at LOG_LEVEL=info
HONCHO_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<process>\S+)\s*\| ?(?P<text>.*)$")
# What `flask --app app init-db` (the web line's first command) prints for the operator: CLI output, not logs.
CLI_OUTPUT = ("Applied migrations: ", "Schema is up to date.", "Created default schedules: ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """`honcho start` on the project's Procfile, in its own session; its output in a file."""

    def __init__(self, env: dict, tmp_path: Path, **extra: str):
        self.port = free_port()
        self.log_path = tmp_path / "honcho.log"
        bin_dir = str(Path(sys.executable).parent)  # the Procfile's `python`, `flask`, `gunicorn`
        full_env = {**os.environ, **env, **extra, "HOST": "127.0.0.1", "PORT": str(self.port),
                    "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        script = Path(bin_dir) / "honcho"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "honcho"]
        self._log = open(self.log_path, "wb")
        # -d tmp_path: honcho reads no .env of the developer's; the processes run in ROOT
        self.process = subprocess.Popen([*command, "start", "--no-colour", "-f", str(ROOT / "Procfile"),
                                         "-d", str(tmp_path)], cwd=ROOT, env=full_env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def lines(self) -> list[tuple[str, str]]:
        """(process, text) of every complete line printed so far; honcho's own lines are `system`."""
        found = []
        for raw in self.log_path.read_bytes().decode(errors="replace").splitlines(keepends=True):
            match = HONCHO_LINE.match(raw.rstrip("\n"))
            if raw.endswith("\n") and match:
                found.append((match["process"].split(".")[0], match["text"]))
        return found

    def output(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def healthy(self) -> bool:
        try:
            reply = requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5)
        except requests.RequestException:
            return False
        return reply.status_code == 200 and reply.json().get("status") == "ok"

    def wait_until_healthy(self, timeout: float = 180) -> None:
        try:
            wait_for(self.healthy, timeout, interval=1, message="the stack's /healthz to be ok")
        except AssertionError:
            raise AssertionError("stack did not become healthy; its output:\n" + self.output()[-5000:]) from None

    def stop(self) -> int | None:
        """SIGTERM to honcho (it stops every process); SIGKILL to the session if that does not end it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # anything left in honcho's session
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self._log.close()
        return self.process.returncode


def _log_lines(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Lines written by the Procfile's processes: not honcho's own, not the init-db CLI output."""
    return [(process, text) for process, text in lines
            if process != "system" and not text.startswith(CLI_OUTPUT)]


def _run_noop_jobs(stack: Stack, count: int) -> list[str]:
    """Start `count` noop jobs and wait until each has completed and written its line."""
    job_ids = [add_job("noop", {}) for _ in range(count)]
    wait_for(lambda: all(Job.get_by_id(job_id).status == "completed" for job_id in job_ids), 60,
             message="noop jobs to complete")
    wait_for(lambda: all(any(job_id in text for _, text in stack.lines()) for job_id in job_ids), 15,
             message="a line for every finished job")
    return job_ids


@pytest.mark.slow
def test_an_idle_stack_is_quiet_and_a_job_writes_one_line(settings_env, tmp_path):
    settings, env = settings_env
    stack = Stack(env, tmp_path, LOG_LEVEL="info")
    try:
        stack.wait_until_healthy()
        time.sleep(SETTLE_SECONDS)
        idle_start = len(stack.lines())
        time.sleep(IDLE_WINDOW_SECONDS)
        idle = _log_lines(stack.lines()[idle_start:])

        jobs_start = len(stack.lines())
        job_ids = _run_noop_jobs(stack, 5)
        after_jobs = _log_lines(stack.lines()[jobs_start:])
    finally:
        stack.stop()
    print(f"idle: {len(idle)} lines in {IDLE_WINDOW_SECONDS} s at LOG_LEVEL=info")
    print("\n".join(f"  {process} | {text}" for process, text in idle[:40]))
    assert len(idle) <= IDLE_LINES_ALLOWED, idle
    for job_id in job_ids:
        lines_of_job = [text for _, text in after_jobs if job_id in text]
        assert len(lines_of_job) == 1, (job_id, after_jobs)
        fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', lines_of_job[0]))
        assert fields["type"] == "noop" and fields["status"] == "completed" and fields["attempt"] == "1"
        assert fields["level"] == "info" and re.fullmatch(r"\d+\.\d{1,3}", fields["duration"])  # seconds, 3 places
        assert float(fields["duration"]) < 5  # a noop
    assert len(after_jobs) <= len(job_ids) + IDLE_LINES_ALLOWED, after_jobs
    # every line is key=value, starting with its time
    assert all(text.startswith("ts=") for _, text in idle + after_jobs), idle + after_jobs


@pytest.mark.slow
def test_log_format_json_gives_one_json_object_per_line(settings_env, tmp_path):
    settings, env = settings_env
    stack = Stack(env, tmp_path, LOG_LEVEL="info", LOG_FORMAT="json")
    try:
        stack.wait_until_healthy()
        job_ids = _run_noop_jobs(stack, 2)
    finally:
        stack.stop()
    lines = _log_lines(stack.lines())
    records = []
    for process, text in lines:
        try:
            records.append(json.loads(text))
        except ValueError:
            raise AssertionError(f"not a JSON line from {process}: {text!r}") from None
    assert all({"ts", "level", "logger", "msg"} <= record.keys() for record in records)
    ends = [record for record in records if record.get("job") in job_ids]
    assert sorted(record["job"] for record in ends) == sorted(job_ids)
    assert all(record["status"] == "completed" and record["type"] == "noop" for record in ends)
    # the web server's own lines are in the same format
    assert any(record["logger"].startswith("gunicorn") for record in records), lines


# --- the format -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, line", [
    ({"level": "info", "msg": "plain"}, "level=info msg=plain"),
    ({"msg": "two words"}, 'msg="two words"'),
    ({"msg": 'say "hi"\nnext line\\'}, r'msg="say \"hi\"\nnext line\\"'),
    ({"msg": "a=b"}, 'msg="a=b"'),
    ({"msg": ""}, 'msg=""'),
    ({"attempt": 2, "duration": 0.25, "ok": True}, "attempt=2 duration=0.25 ok=True"),
    ({"meta": {"a": 1}}, 'meta="{\\"a\\": 1}"'),
    ({"job": None, "msg": "x"}, "msg=x"),
])
def test_key_value_lines(fields, line):
    assert format_keyvalue(fields) == line


def _record(name="app.test", level=logging.INFO, msg="hello %s", args=("world",), exc_info=None, **extra):
    record = logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_a_record_is_one_line_with_its_extras_and_traceback_in_either_format():
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        exc_info = sys.exc_info()
    record = _record(level=logging.ERROR, exc_info=exc_info, job="j-1", type="noop")
    fields = record_fields(record)
    assert list(fields)[:6] == ["ts", "level", "logger", "msg", "job", "type"]
    assert (fields["level"], fields["logger"], fields["msg"]) == ("error", "app.test", "hello world")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields["ts"])

    text = StructuredFormatter("keyvalue").format(record)
    assert "\n" not in text and text.startswith("ts=") and " level=error logger=app.test msg=\"hello world\" " \
        "job=j-1 type=noop exc=\"Traceback" in text and "ValueError: bad\\nvalue" in text
    parsed = json.loads(StructuredFormatter("json").format(record))
    assert "\n" not in StructuredFormatter("json").format(record)
    assert (parsed["msg"] == "hello world" and parsed["job"] == "j-1"
            and parsed["exc"].endswith("ValueError: bad\nvalue"))
    assert StructuredFormatter("json").format(_record(level=logging.WARNING)).count('"level": "warn"') == 1
    with pytest.raises(ValueError):
        StructuredFormatter("xml")


# --- what is chatter ---------------------------------------------------------------------------------

@pytest.mark.parametrize("logger, template, expected", [
    ("rq.worker", "Worker %s: cleaning registries for queue: %s", True),
    ("rq.worker", "*** Listening on %s...", True),
    ("rq.worker", "Worker %s: subscribing to channel %s", True),
    ("rq.worker", "Worker %s: started with PID %d, version %s", True),
    ("rq.worker", "Worker %s: %s: %s (%s)", True),  # dequeued (with description) and "Job OK"
    ("rq.worker", "Worker %s: %s: %s", True),  # dequeued
    ("rq.worker", "Successfully completed %s job in %ss on worker %s", True),
    ("rq.worker", "Worker %s: job %s result is kept for %s seconds", True),
    ("rq.worker", "Worker %s: job %s: exception raised while executing (%s)\n%s", True),
    ("rq.job", "Job %s: scheduled for retry at %s, %s remaining", True),
    ("rq.scheduler", "Acquired scheduler lock for %s", True),
    ("rq_scheduler.scheduler", "Registering birth", True),
    # what an admin must see stays
    ("rq.worker", "Worker %s: suspended, run `rq resume` to resume", False),
    ("rq.worker", "Worker %s: job %s failed (%s)", False),
    ("rq.worker", "Work horse killed for job %s: retpid=%s, ret_val=%s", False),
    ("rq.worker", "Worker %s: killed horse pid %s", False),
    ("rq.worker", "Worker %s: %s: %s extra", False),
    ("app.jobs.callbacks", "*** Listening on %s...", False),  # only RQ's loggers are re-levelled
    ("rq.worker", 42, False),
])
def test_rq_chatter(logger, template, expected):
    assert quieted(logger, template) is expected


def test_chatter_is_dropped_at_info_and_shown_as_debug_at_debug():
    chatter = "Worker %s: cleaning registries for queue: %s"
    at_info, at_debug = QuietChatter(logging.INFO), QuietChatter(logging.DEBUG)
    assert at_info.filter(_record("rq.worker", msg=chatter, args=("w", "q"))) is False
    record = _record("rq.worker", msg=chatter, args=("w", "q"))
    assert at_debug.filter(record) is True and (record.levelno, record.levelname) == (logging.DEBUG, "DEBUG")
    traceback_line = _record("rq.worker", logging.ERROR, "Worker %s: job %s: exception raised while executing (%s)\n%s",
                             ("w", "j", "f", "trace"))
    assert at_info.filter(traceback_line) is False
    warning = _record("rq.worker", logging.WARNING, "Worker %s: job %s failed (%s)", ("w", "j", "x"))
    assert at_info.filter(warning) is True and warning.levelno == logging.WARNING


def test_job_events_mirror_info_at_debug_and_trouble_as_it_is(settings, caplog):
    job = Job.create(type="noop")
    log = create_job_logger(str(job.id), "Organize")
    with caplog.at_level(logging.DEBUG, logger="jobs"):
        log.info("Processing", {"files": 3})
        log.warning("Slow disk")
        log.error("Copy failed")
    assert [(r.levelname, r.getMessage(), r.job) for r in caplog.records] == [
        ("DEBUG", "[Organize] Processing {'files': 3}", str(job.id)),
        ("WARNING", "[Organize] Slow disk", str(job.id)),
        ("ERROR", "[Organize] Copy failed", str(job.id)),
    ]


# --- the job's end line ------------------------------------------------------------------------------

@pytest.mark.parametrize("retries_left, intervals, attempt", [
    (None, None, 1),  # JOB_MAX_ATTEMPTS=1: no retry policy
    (2, [2, 4], 1),
    (1, [2, 4], 2),
    (0, [2, 4], 3),
    (None, [2, 4], 3),  # RQ stores no retries_left once it reached 0
    (5, [2], 1),  # never below 1
])
def test_attempt_number(retries_left, intervals, attempt):
    assert attempt_number(retries_left, intervals) == attempt


@pytest.mark.parametrize("exc_string, reason", [
    ("Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: boom\n", "RuntimeError: boom"),
    ("Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ", "Work-horse terminated unexpectedly; "
     "waitpid returned 9 (signal 9);"),
    ("", "unknown error"),
])
def test_failure_reason(exc_string, reason):
    assert failure_reason(exc_string) == reason


@pytest.mark.parametrize("failed, retries_left, stopped, result, status", [
    (False, None, False, {"success": True}, "completed"),
    (False, None, False, None, "completed"),
    (False, None, False, {"skipped": True, "reason": "cancelled"}, "skipped"),
    (True, 2, False, None, "retrying"),
    (True, 0, False, None, "failed"),
    (True, None, False, None, "failed"),
    (True, 2, True, None, "cancelled"),
])
def test_end_status(failed, retries_left, stopped, result, status):
    assert end_status(failed=failed, retries_left=retries_left, stopped=stopped, result=result) == status


def test_each_run_of_a_failing_job_writes_its_end_line_and_its_reason(settings_env, redis_conn, use_settings,
                                                                        process_log):
    use_settings(JOB_BACKOFF_SECONDS=0, JOB_MAX_ATTEMPTS=3)
    job_id = add_job("test_fail", {"tag": "x"})
    done_id = add_job("test_record", {"tag": "y"})
    drain(queue_names_for_type("test_fail") + queue_names_for_type("test_record"),
          until=lambda: Job.get_by_id(job_id).status == "failed" and Job.get_by_id(done_id).status == "completed")
    lines = process_log.getvalue().splitlines()
    ends = [dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)) for line in lines if "logger=workers.job" in line]
    assert [(end["job"], end["status"], end["attempt"]) for end in ends] == [
        (job_id, "retrying", "1"), (job_id, "retrying", "2"), (job_id, "failed", "3"), (done_id, "completed", "1")]
    assert all(end["error"] == '"RuntimeError: boom for x"' for end in ends[:3]) and "error" not in ends[3]
    # besides its end line, each failed run writes one line with the reason (its event, at warn or error)
    lines_of_job = [line for line in lines if job_id in line]
    assert len(lines_of_job) == 6, lines
    reasons = [line for line in lines_of_job if "logger=workers.job" not in line]
    assert [re.search(r"level=(\w+)", line)[1] for line in reasons] == ["warn", "warn", "error"]
    assert all("RuntimeError: boom for x" in line for line in reasons)
    # the job that worked wrote one line, and nothing else was written
    assert len([line for line in lines if done_id in line]) == 1
    assert len(lines) == 7, lines


@pytest.fixture
def polling_type():
    """`test_poll`: a job that polls twice (like monitor_download), then completes; removed afterwards."""
    from app.jobs import types
    from workers import processors
    from workers.context import Reschedule

    types.register(types.JobType(name="test_poll", group="testing", timeout=30))

    @processors.register("test_poll")
    def poll(payload: dict):
        polls = int(payload.get("polls", 0))
        return {"polls": polls} if polls == 2 else Reschedule(0.1, {"polls": polls + 1})

    yield "test_poll"
    types._REGISTRY.pop("test_poll", None)
    processors._PROCESSORS.pop("test_poll", None)


@pytest.mark.slow
def test_a_polling_job_writes_one_line_when_it_ends_not_one_per_poll(settings_env, redis_conn, polling_type,
                                                                     process_log):
    job_id = add_job(polling_type, {})
    drain(queue_names_for_type(polling_type), until=lambda: Job.get_by_id(job_id).status == "completed")
    lines = process_log.getvalue().splitlines()
    assert Job.get_by_id(job_id).polls == 2
    assert len(lines) == 1 and "status=completed" in lines[0] and "attempt=1" in lines[0], lines

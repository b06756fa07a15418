"""The Procfile's web line: gunicorn (gthread) on the configured address, threads and processes, and a
graceful stop on SIGTERM that lets a request in flight finish.

The command is read from the project's Procfile and run the way honcho runs it (`sh -c`), so these
tests fail when the Procfile does not start what the README says."""
from __future__ import annotations

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

from app.config import SettingsError, load_settings
from app.gunicorn_conf import bind_address

from helpers import ROOT, wait_for

GRACEFUL_TIMEOUT = 20  # long enough that the drain below is never cut short by it


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and key.strip() == name:
            return command.strip()
    raise AssertionError(f"the Procfile has no {name!r} line")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                found.append(int(entry))
    return found


class WebLine:
    """The Procfile's web command under `sh -c`, in its own session, output to a file."""

    def __init__(self, env: dict, tmp_path: Path, **extra: str):
        self.port = free_port()
        self.log_path = tmp_path / "web.log"
        bin_dir = str(Path(sys.executable).parent)  # the Procfile's `flask` and `gunicorn`
        full_env = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "info",
                    "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **extra}
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(["/bin/sh", "-c", procfile_command("web")], cwd=ROOT, env=full_env,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def wait_until_serving(self) -> None:
        def serving() -> bool:
            assert self.process.poll() is None, f"the web line exited early:\n{self.output()}"
            try:
                return requests.get(f"{self.url}/healthz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(serving, 90, interval=0.3, message="/healthz on the web line")

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self._log.close()


@pytest.fixture
def web(settings_env, tmp_path):
    settings, env = settings_env
    started = []

    def start(**extra: str) -> WebLine:
        line = WebLine(env, tmp_path, **extra)
        started.append(line)
        return line

    yield start
    for line in started:
        line.kill()


@pytest.mark.slow
def test_the_web_line_is_gunicorn_with_the_configured_threads_and_workers(web):
    line = web(WEB_THREADS="3", WEB_WORKERS="2", WEB_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT))
    line.wait_until_serving()
    reply = requests.get(f"{line.url}/healthz", timeout=5)
    assert reply.status_code == 200 and reply.json()["database"] == "ok" and reply.json()["redis"] == "ok"

    # `exec`: the process honcho (here sh -c) started is the gunicorn master itself, so its signals and
    # exit status are gunicorn's
    master = cmdline(line.process.pid)
    assert any(Path(part).name == "gunicorn" for part in master), master
    wait_for(lambda: len(children(line.process.pid)) == 2, 30, message="2 gunicorn worker processes")
    assert all(cmdline(pid) == master for pid in children(line.process.pid))
    ready = re.search(r'msg="web server ready on 127\.0\.0\.1:(\d+): (\d+) worker process\(es\) × (\d+) threads '
                      r'\((\w+)\), graceful stop (\d+) s"', line.output())
    assert ready, line.output()
    assert ready.groups() == (str(line.port), "2", "3", "gthread", str(GRACEFUL_TIMEOUT))
    assert "development server" not in line.output().lower()


def _accepted_by(pid: int, server_port: int, client_port: int) -> bool:
    """Whether process `pid` holds the server side of the connection from `client_port` (the kernel gives a
    socket its inode when it is accepted; one still in the listen backlog has none)."""
    wanted = f":{server_port:04X}", f":{client_port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(wanted[0]) and fields[2].endswith(wanted[1]) and fields[9] != "0":
            inodes.add(f"socket:[{fields[9]}]")
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) in inodes:
                return True
        except OSError:  # closed meanwhile
            pass
    return False


@pytest.mark.slow
def test_sigterm_lets_a_request_in_flight_finish_then_exits_0(web):
    line = web(WEB_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT))
    line.wait_until_serving()
    # A request in flight: connected, its headers only half sent.
    worker_pid = int(re.findall(r"Booting worker with pid: (\d+)", line.output())[-1])
    client = socket.create_connection(("127.0.0.1", line.port), timeout=30)
    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    # The worker has accepted it: only an accepted connection is a request in flight; one still in the
    # listen backlog when the signal lands is never served, by design.
    client_port = client.getsockname()[1]
    wait_for(lambda: _accepted_by(worker_pid, line.port, client_port), 10,
             message="the worker to accept the connection")
    time.sleep(0.3)  # and to hand the readable connection to a thread (gthread does so on its next poll)
    # honcho (and systemd) signal the whole process group
    os.killpg(line.process.pid, signal.SIGTERM)
    wait_for(lambda: "Handling signal: term" in line.output(), 15, message="gunicorn to take the SIGTERM")
    time.sleep(1)  # time to act on the signal: were it not waiting for our request, it would be gone by now
    assert line.process.poll() is None and "Worker exiting" not in line.output(), line.output()
    client.sendall(b"Connection: close\r\n\r\n")
    reply = b""
    while chunk := client.recv(65536):
        reply += chunk
    client.close()
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert line.process.wait(GRACEFUL_TIMEOUT + 10) == 0, line.output()
    assert "Shutting down: Master" in line.output()


@pytest.mark.slow
def test_long_urls_get_the_apps_answer_json_under_api_not_the_servers_page(web):
    from app.web.errors import MAX_URL_LENGTH

    from helpers import API_TOKEN

    line = web()
    line.wait_until_serving()
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    # a URL past gunicorn's default request line (4094) reaches the app, which answers it as usual ...
    answered = requests.get(f"{line.url}/api/admin/logs?page={'9' * 5000}", headers=bearer, timeout=30)
    assert answered.status_code == 400 and answered.json()["success"] is False, answered.text[:200]
    # ... and one past the app's limit is the app's 414: JSON under /api, a page elsewhere
    too_long = "q=" + "a" * MAX_URL_LENGTH
    refused = requests.get(f"{line.url}/api/admin/logs?{too_long}", headers=bearer, timeout=30)
    assert refused.status_code == 414 and refused.headers["Content-Type"] == "application/json", refused.text[:200]
    assert refused.json() == {"success": False, "error": f"URL too long: at most {MAX_URL_LENGTH} characters of "
                                                         "path and query"}
    page = requests.get(f"{line.url}/admin/logs?{too_long}", timeout=30, allow_redirects=False)
    assert page.status_code == 414 and page.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("environ, expected", [
    ({}, ("127.0.0.1", 5000, 1, 4, 10, "keyvalue")),
    ({"HOST": "0.0.0.0", "PORT": "8080", "WEB_WORKERS": "2", "WEB_THREADS": "8", "WEB_GRACEFUL_TIMEOUT": "30",
      "LOG_FORMAT": "JSON"}, ("0.0.0.0", 8080, 2, 8, 30, "json")),
])
def test_web_settings(environ, expected):
    settings = load_settings(environ, env_file=None)
    assert (settings.host, settings.port, settings.web_workers, settings.web_threads, settings.web_graceful_timeout,
            settings.log_format) == expected


@pytest.mark.parametrize("environ, problem", [
    ({"PORT": "0"}, "PORT='0'"),
    ({"PORT": "70000"}, "PORT='70000'"),
    ({"PORT": "http"}, "PORT='http'"),
    ({"HOST": "my host"}, "HOST='my host'"),
    ({"WEB_THREADS": "0"}, "WEB_WORKERS and WEB_THREADS must be at least 1"),
    ({"WEB_WORKERS": "0"}, "WEB_WORKERS and WEB_THREADS must be at least 1"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml'"),
])
def test_bad_web_settings_stop_the_start(environ, problem):
    with pytest.raises(SettingsError, match=re.escape(problem)):
        load_settings(environ, env_file=None)


@pytest.mark.parametrize("host, port, expected", [
    ("127.0.0.1", 5000, "127.0.0.1:5000"),
    ("0.0.0.0", 80, "0.0.0.0:80"),
    ("::1", 5000, "[::1]:5000"),
    ("[::]", 5000, "[::]:5000"),
    ("localhost", 5000, "localhost:5000"),
])
def test_bind_address(host, port, expected):
    assert bind_address(host, port) == expected

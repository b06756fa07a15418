"""The Procfile's web line: gunicorn with waitress workers on the configured address, threads and processes,
a graceful stop on SIGTERM that lets a request in flight finish, and slow clients that cannot freeze it.

The command is read from the project's Procfile and run the way honcho runs it (`sh -c`), so these
tests fail when the Procfile does not start what the README says."""
from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import time
from pathlib import Path

import pytest
import requests

from app.config import SettingsError, load_settings
from app.gunicorn_conf import bind_address
from app.waitress_worker import open_file_limits

from helpers import ADMIN_PASSWORD, API_TOKEN, wait_for
from web_line import WebLine

GRACEFUL_TIMEOUT = 20  # long enough that the drain below is never cut short by it


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
def test_the_web_line_is_gunicorn_with_waitress_workers_and_the_configured_threads(web):
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
    assert ready.groups() == (str(line.port), "2", "3", "waitress", str(GRACEFUL_TIMEOUT))
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
    time.sleep(0.3)  # and to read what has arrived (waitress does so on its next poll)
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
    # a URL past gunicorn's default request line (4094) reaches the app (waitress reads heads up to 64 KiB) ...
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


SLOW_CLIENTS = 50


def login_form_token(session: requests.Session, url: str) -> str:
    """The CSRF token of the login form, for this session."""
    page = session.get(f"{url}/login", timeout=10).text
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def logged_in_session(url: str) -> requests.Session:
    """A requests session logged in through the real login form (CSRF token included)."""
    session = requests.Session()
    token = login_form_token(session, url)
    reply = session.post(f"{url}/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
                         allow_redirects=False, timeout=10)
    assert reply.status_code == 302, reply.text
    return session


def timed_get(client, url: str) -> tuple[float, requests.Response | None]:
    """Seconds a GET took and its answer (None: none within 5 s)."""
    started = time.monotonic()
    try:
        reply = client.get(url, allow_redirects=False, timeout=5)
    except requests.Timeout:
        reply = None
    return time.monotonic() - started, reply


@pytest.mark.slow
def test_slow_clients_cannot_freeze_the_web(web):
    """Each slow client sends one byte of a request and waits: a server that reads a started request in a pool
    thread with no deadline (gunicorn's gthread) has no thread left for anyone else after WEB_THREADS of them."""
    line = web()
    line.wait_until_serving()
    session = logged_in_session(line.url)
    slow = [socket.create_connection(("127.0.0.1", line.port), timeout=10) for _ in range(SLOW_CLIENTS)]
    try:
        for client in slow:
            client.sendall(b"G")
        time.sleep(1)  # the server has accepted them and read their byte
        for client, path in ((session, "/admin/logs"), (requests, "/healthz")):
            elapsed, reply = timed_get(client, f"{line.url}{path}")
            assert reply is not None and reply.status_code == 200, (path, reply, line.output()[-2000:])
            assert elapsed < 1.0, (path, elapsed)
        assert 'action="/logout"' in session.get(f"{line.url}/admin/logs", timeout=5).text  # the page, logged in
        # the slow clients were not simply refused: each can still finish its request
        slow[0].sendall(b"ET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert slow[0].recv(64).startswith(b"HTTP/1.1 200 ")
    finally:
        for client in slow:
            client.close()


def read_one_answer(client: socket.socket) -> bytes:
    """One whole answer on a kept-alive connection (head and its Content-Length of body, however it is split)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += client.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += client.recv(65536)
    return head + b"\r\n\r\n" + body


def read_reply(client: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    reply = b""
    while chunk := client.recv(65536):
        reply += chunk
    return reply


@pytest.mark.slow
def test_a_stop_closes_idle_connections_and_waits_for_slow_ones_no_longer_than_the_graceful_timeout(web):
    line = web(WEB_GRACEFUL_TIMEOUT="4")
    line.wait_until_serving()
    worker_pid = int(re.findall(r"Booting worker with pid: (\d+)", line.output())[-1])
    idle = socket.create_connection(("127.0.0.1", line.port), timeout=10)  # a keep-alive after its answer
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_one_answer(idle).startswith(b"HTTP/1.1 200 ")
    slow = [socket.create_connection(("127.0.0.1", line.port), timeout=10) for _ in range(SLOW_CLIENTS)]
    for client in slow:
        client.sendall(b"G")
    wait_for(lambda: all(_accepted_by(worker_pid, line.port, client.getsockname()[1]) for client in slow), 10,
             message="the worker to accept the slow clients")
    try:
        stopped_at = time.monotonic()
        os.killpg(line.process.pid, signal.SIGTERM)
        assert read_reply(idle) == b""  # closed at once, not kept to the end of the stop
        assert time.monotonic() - stopped_at < 3
        # the slow clients' requests had started: they had until the graceful timeout, then the stop went on
        assert line.process.wait(4 + 10) == 0, line.output()
        assert time.monotonic() - stopped_at >= 3.5
    finally:
        for client in [idle, *slow]:
            client.close()


@pytest.mark.slow
def test_a_connection_silent_for_web_client_timeout_is_closed(web):
    line = web(WEB_CLIENT_TIMEOUT="1")
    line.wait_until_serving()
    with socket.create_connection(("127.0.0.1", line.port), timeout=15) as trickle:
        trickle.sendall(b"GET /heal")
        started = time.monotonic()
        assert read_reply(trickle) == b""
        assert 1 <= time.monotonic() - started < 10
    with socket.create_connection(("127.0.0.1", line.port), timeout=15) as quick:  # one that talks is served
        quick.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert read_reply(quick).startswith(b"HTTP/1.1 200 ")


@pytest.mark.slow
def test_connections_over_web_max_connections_wait_in_the_backlog(web):
    line = web(WEB_MAX_CONNECTIONS="3")
    line.wait_until_serving()
    held = [socket.create_connection(("127.0.0.1", line.port), timeout=10) for _ in range(3)]
    try:
        time.sleep(0.5)  # accepted: the limit is reached
        with pytest.raises(requests.Timeout):
            requests.get(f"{line.url}/healthz", timeout=1.5)
        held.pop().close()
        assert requests.get(f"{line.url}/healthz", timeout=5).status_code == 200
        assert "connection limit" in line.output()  # waitress says so in the log
    finally:
        for client in held:
            client.close()


@pytest.mark.slow
def test_a_body_over_max_content_length_or_a_head_over_64_kib_is_refused_by_the_server(web):
    line = web(MAX_CONTENT_LENGTH="4096")
    line.wait_until_serving()
    for path in ("/api/requests", "/login"):
        with socket.create_connection(("127.0.0.1", line.port), timeout=10) as client:
            # a 200 MB body announced, 10 bytes of it sent: the answer cannot wait for the rest
            client.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Authorization: Bearer " + API_TOKEN.encode() + b"\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 209715200\r\n\r\n{\"title\":")
            head, _, body = read_reply(client).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 "), head
        if path.startswith("/api/"):  # the shape of every other API error (app/web/errors.py)
            assert b"Content-Type: application/json" in head, head
            assert json.loads(body) == {"success": False, "error": "request body too large: at most 4096 bytes"}
    too_long = "x" * (70 * 1024)  # the head is over 64 KiB: refused before the app, JSON under /api
    for path, content_type in ((f"/api/requests?q={too_long}", "application/json"), (f"/admin/logs?q={too_long}",
                                                                                      "text/plain; charset=utf-8")):
        reply = requests.get(f"{line.url}{path}", timeout=10)
        assert (reply.status_code, reply.headers["Content-Type"]) == (431, content_type), reply.text[:200]
    padded = requests.get(f"{line.url}/api/requests", headers={"X-Padding": too_long}, timeout=10)
    assert padded.status_code == 431 and padded.json() == {
        "success": False, "error": "Request Header Fields Too Large: exceeds max_header of 65536"}
    at_the_limit = requests.post(f"{line.url}/api/requests", data=b" " * 4096, timeout=5,
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"})
    assert at_the_limit.status_code == 400 and "not valid JSON" in at_the_limit.json()["error"]  # read, parsed


@pytest.mark.slow
def test_the_server_passes_x_forwarded_for_to_the_app_which_believes_trusted_proxies(web):
    """The server leaves X-Forwarded-* to the app (TRUSTED_PROXIES, ProxyFix): seen here by the per-address
    login limit, which counts the address the proxy wrote (waitress alone would drop the header)."""
    line = web(TRUSTED_PROXIES="1")
    line.wait_until_serving()
    session = requests.Session()
    token = login_form_token(session, line.url)

    def wrong_login(username: str, forwarded_for: str) -> int:
        return session.post(f"{line.url}/login", data={"username": username, "password": "wrong", "csrf_token": token},
                            headers={"X-Forwarded-For": forwarded_for}, timeout=10).status_code

    assert [wrong_login(f"u{i}", "203.0.113.9") for i in range(5)] == [401] * 5
    assert wrong_login("u5", "203.0.113.9") == 429  # that address is blocked...
    assert wrong_login("u6", "203.0.113.10") == 401  # ...not the proxy's other clients


@pytest.mark.parametrize("wanted, soft, hard, expected", [
    (1000, 20000, 20000, (20000, 1000)),  # enough already: untouched
    (1000, 1024, 4096, (1128, 1000)),  # raised as far as needed
    (1000, 1024, 1024, (1024, 896)),  # the hard limit caps the connections
    (1000, 1024, resource.RLIM_INFINITY, (1128, 1000)),
    (1000, resource.RLIM_INFINITY, resource.RLIM_INFINITY, (resource.RLIM_INFINITY, 1000)),
    (10, 64, 64, (64, 1)),  # never below one connection
])
def test_open_file_limits(wanted, soft, hard, expected):
    assert open_file_limits(wanted, soft, hard) == expected


@pytest.mark.parametrize("environ, expected", [
    ({}, ("127.0.0.1", 5000, 1, 4, 10, 30, 1000, "keyvalue")),
    ({"HOST": "0.0.0.0", "PORT": "8080", "WEB_WORKERS": "2", "WEB_THREADS": "8", "WEB_GRACEFUL_TIMEOUT": "30",
      "WEB_CLIENT_TIMEOUT": "5", "WEB_MAX_CONNECTIONS": "200", "LOG_FORMAT": "JSON"},
     ("0.0.0.0", 8080, 2, 8, 30, 5, 200, "json")),
])
def test_web_settings(environ, expected):
    settings = load_settings(environ, env_file=None)
    assert (settings.host, settings.port, settings.web_workers, settings.web_threads, settings.web_graceful_timeout,
            settings.web_client_timeout, settings.web_max_connections, settings.log_format) == expected


@pytest.mark.parametrize("environ, problem", [
    ({"PORT": "0"}, "PORT='0'"),
    ({"PORT": "70000"}, "PORT='70000'"),
    ({"PORT": "http"}, "PORT='http'"),
    ({"HOST": "my host"}, "HOST='my host'"),
    ({"WEB_THREADS": "0"}, "WEB_WORKERS and WEB_THREADS must be at least 1"),
    ({"WEB_WORKERS": "0"}, "WEB_WORKERS and WEB_THREADS must be at least 1"),
    ({"WEB_CLIENT_TIMEOUT": "0"}, "WEB_CLIENT_TIMEOUT and WEB_MAX_CONNECTIONS must be at least 1"),
    ({"WEB_MAX_CONNECTIONS": "0"}, "WEB_CLIENT_TIMEOUT and WEB_MAX_CONNECTIONS must be at least 1"),
    ({"WEB_MAX_CONNECTIONS": "many"}, "WEB_MAX_CONNECTIONS='many'"),
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

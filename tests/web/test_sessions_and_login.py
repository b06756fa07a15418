"""Login throttling, sessions that logout really ends, proxy trust, cookie flags, security headers and a
strict Content-Security-Policy (no inline script or event handler on any page), and CSRF tokens that live
as long as the session."""
from __future__ import annotations

import logging
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
import requests
from flask import jsonify, request

from app import auth
from app.auth import known_device
from app.models import Audiobook, Job, JobEvent, Request
from app.schedules.defaults import ensure_default_schedules

from helpers import ADMIN_PASSWORD, API_TOKEN, serve_app, wait_for

TOKEN_PATTERN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _token(client, path: str = "/login") -> str:
    return TOKEN_PATTERN.search(client.get(path).get_data(as_text=True)).group(1)


def _post_login(client, username: str, password: str, **kwargs):
    token = _token(client)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token}, **kwargs)


def _client_from(flask_app, address: str, **headers):
    client = flask_app.test_client()
    client.environ_base.update({"REMOTE_ADDR": address, **{f"HTTP_{k.upper()}": v for k, v in headers.items()}})
    return client


def _parallel_logins(flask_app, attempts: list[tuple[str, str, str]]) -> list[int]:
    """Each (address, username, password) posted at the same moment, each from its own test client."""
    prepared = []
    for address, username, password in attempts:
        client = _client_from(flask_app, address)
        prepared.append((client, {"username": username, "password": password, "csrf_token": _token(client)}))
    barrier = threading.Barrier(len(prepared))

    def post(item):
        client, data = item
        barrier.wait()
        return client.post("/login", data=data).status_code

    with ThreadPoolExecutor(len(prepared)) as pool:
        return list(pool.map(post, prepared))


@pytest.fixture
def frozen_clock(monkeypatch):
    """The throttle's clock, moved by hand (no sleeping, no timed assertions)."""
    clock = SimpleNamespace(now=1_700_000_000.0)
    monkeypatch.setattr(auth, "throttle_clock", lambda: clock.now, raising=False)
    return clock


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- pure decisions --------------------------------------------------------------------------------------

@pytest.mark.parametrize("address, key", [
    ("203.0.113.9", "203.0.113.9"),
    ("2001:db8:1:2::5", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::5", "2001:db8:1:3::/64"),
    ("::ffff:203.0.113.9", "203.0.113.9"),  # an IPv4 client on a dual-stack socket
    ("", "unknown"),
    (None, "unknown"),
    ("not-an-address", "not-an-address"),
])
def test_clients_are_counted_by_address_and_ipv6_by_their_64(address, key):
    assert auth.client_key(address) == key


@pytest.mark.parametrize("attempts, delay", [
    (1, 0), (4, 0), (5, 1), (6, 2), (7, 4), (10, 32), (13, 256), (14, 300), (500, 300)])
def test_the_per_username_back_off_doubles_after_five_attempts(attempts, delay):
    assert auth.username_delay(attempts) == delay


# --- the throttle ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_forty_parallel_wrong_logins_from_one_address_get_five_tries(live_url):
    sessions = []
    for _ in range(40):
        session = requests.Session()
        token = TOKEN_PATTERN.search(session.get(f"{live_url}/login").text).group(1)
        sessions.append((session, token))
    barrier = threading.Barrier(len(sessions))

    def post(item):
        session, token = item
        barrier.wait()
        return session.post(f"{live_url}/login", data={"username": "admin", "password": "wrong", "csrf_token": token},
                            allow_redirects=False).status_code

    with ThreadPoolExecutor(len(sessions)) as pool:
        codes = list(pool.map(post, sessions))
    assert sorted(codes) == [401] * 5 + [429] * 35, codes  # the limit is taken atomically: exactly five
    # and the right password from that address is refused too while it is blocked
    session, _ = sessions[0]
    token = TOKEN_PATTERN.search(session.get(f"{live_url}/login").text).group(1)
    blocked = session.post(f"{live_url}/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                                     "csrf_token": token}, allow_redirects=False)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0


def test_the_addresses_of_one_ipv6_64_are_throttled_together(flask_app, redis_conn):
    # a different username each time, so that only the per-address counter can refuse
    codes = _parallel_logins(flask_app, [(f"2001:db8:1:2::{i:x}", f"user{i}", "wrong") for i in range(1, 41)])
    assert sorted(codes) == [401] * 5 + [429] * 35, codes  # the limit is taken atomically: exactly five
    neighbour = _client_from(flask_app, "2001:db8:1:3::1")  # the next /64 is someone else
    assert _post_login(neighbour, "someone", "wrong").status_code == 401


def test_many_addresses_against_one_username_are_slowed_down(flask_app, redis_conn, frozen_clock):
    codes = [_post_login(_client_from(flask_app, f"198.51.100.{i}"), "admin", "wrong").status_code
             for i in range(1, 41)]
    assert codes == [401] * 5 + [429] * 35
    frozen_clock.now += 1  # the 5th failure made the next guess wait 1 s, the 6th makes it 2 s
    assert _post_login(_client_from(flask_app, "198.51.100.41"), "ADMIN", "wrong").status_code == 401
    assert _post_login(_client_from(flask_app, "198.51.100.42"), "admin", "wrong").status_code == 429
    frozen_clock.now += 1
    refused = _post_login(_client_from(flask_app, "198.51.100.43"), "admin", ADMIN_PASSWORD)
    assert refused.status_code == 429 and "Too many failed logins" in refused.get_data(as_text=True)
    frozen_clock.now += 1
    # the right password once the wait is over, and a success clears the back-off
    assert _post_login(_client_from(flask_app, "198.51.100.44"), "admin", ADMIN_PASSWORD).status_code == 302
    assert _post_login(_client_from(flask_app, "198.51.100.45"), "admin", "wrong").status_code == 401


def test_with_redis_down_logins_still_work_and_are_throttled_in_process(use_settings, redis_conn):
    from app import create_app

    flask_app = create_app(use_settings(REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"))
    flask_app.config.update(TESTING=True)
    codes = _parallel_logins(flask_app, [("203.0.113.7", f"user{i}", "wrong") for i in range(40)])
    assert sorted(codes) == [401] * 5 + [429] * 35, codes  # the limit is taken atomically: exactly five
    assert _post_login(_client_from(flask_app, "203.0.113.8"), "admin", ADMIN_PASSWORD).status_code == 302
    other = [_post_login(_client_from(flask_app, f"203.0.113.{i}"), f"user{i}", "wrong").status_code
             for i in range(20, 26)]
    assert other == [401] * 6  # other addresses keep their own tries


# --- known devices: the real admin cannot be locked out --------------------------------------------------

def _device_cookie(response) -> str:
    """The known-device cookie a successful login set (its value)."""
    for header in response.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        if name == known_device.COOKIE_NAME:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no {known_device.COOKIE_NAME} cookie in {response.headers.getlist('Set-Cookie')}")


def _login_with_device(flask_app, address: str, cookie: str | None, password: str = ADMIN_PASSWORD):
    client = _client_from(flask_app, address)
    if cookie is not None:
        client.set_cookie(known_device.COOKIE_NAME, cookie, path=known_device.COOKIE_PATH)
    return _post_login(client, "admin", password)


def _lock_the_admin_username(flask_app, first: int = 1, guesses: int = 6) -> None:
    """Wrong guesses for `admin`, each from a new address: the username must then wait."""
    codes = [_post_login(_client_from(flask_app, f"198.51.100.{i}"), "admin", "wrong").status_code
             for i in range(first, first + guesses)]
    assert 401 in codes and codes[-1] == 429, codes
    # the right password, from a browser that is no known device, is refused
    assert _login_with_device(flask_app, f"198.51.100.{first + guesses}", None).status_code == 429


@pytest.mark.slow
def test_the_admin_logs_in_at_the_first_try_over_http_while_an_attacker_rotates_addresses(
        use_settings, redis_conn, frozen_clock):
    from app import create_app

    flask_app = create_app(use_settings(TRUSTED_PROXIES=1))  # X-Forwarded-For is believed: addresses rotate
    with serve_app(flask_app) as url:
        def attempt(session: requests.Session, address: str, password: str) -> requests.Response:
            token = TOKEN_PATTERN.search(session.get(f"{url}/login").text).group(1)
            return session.post(f"{url}/login", data={"username": "admin", "password": password, "csrf_token": token},
                                headers={"X-Forwarded-For": address}, allow_redirects=False)

        admin = requests.Session()  # the admin's browser: one login before the attack makes it a known device
        assert attempt(admin, "192.0.2.10", ADMIN_PASSWORD).status_code == 302
        admin.cookies.clear(domain="127.0.0.1", path="/", name="session")  # the session ends; the device stays
        assert admin.cookies.get(known_device.COOKIE_NAME)

        stop, codes = threading.Event(), []

        def attacker() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                codes.append(attempt(requests.Session(), f"203.0.113.{i % 250 + 1}", f"guess{i}").status_code)

        thread = threading.Thread(target=attacker)
        thread.start()
        try:
            wait_for(lambda: codes.count(429) >= 5, 30, message="the attacker to be throttled on the username")
            # without the cookie the account limit still applies, from any address
            assert attempt(requests.Session(), "192.0.2.20", ADMIN_PASSWORD).status_code == 429
            # the admin's known device: in at the first try, while the guessing goes on
            first_try = attempt(admin, "192.0.2.10", ADMIN_PASSWORD)
            assert first_try.status_code == 302, first_try.text
            assert admin.get(f"{url}/admin/requests", allow_redirects=False).status_code == 200
        finally:
            stop.set()
            thread.join(30)
    assert codes.count(401) == auth.USERNAME_FREE_ATTEMPTS + 1 and set(codes) == {401, 429}, codes


def test_a_forged_foreign_or_expired_device_cookie_gives_nothing(flask_app, redis_conn, frozen_clock):
    genuine = _device_cookie(_login_with_device(flask_app, "192.0.2.10", None))
    _lock_the_admin_username(flask_app)
    payload, _, signature = genuine.rpartition(".")
    forged = f"{payload}.{signature[:-2]}{'AA' if not signature.endswith('AA') else 'BB'}"
    secret, password_hash = flask_app.config["SECRET_KEY"], flask_app.config["ADMIN_PASSWORD_HASH"]
    admin_key = auth.username_key("admin")
    device = known_device.read(genuine, secret, password_hash, admin_key, frozen_clock.now)
    assert device
    refused = {
        "forged signature": forged,
        "another secret key": known_device.issue("not-the-secret-key", password_hash, admin_key, device,
                                                 frozen_clock.now),
        "before a password change": known_device.issue(secret, "an-older-password-hash", admin_key, device,
                                                       frozen_clock.now),
        "another username": known_device.issue(secret, password_hash, auth.username_key("root"), device,
                                               frozen_clock.now),
        "garbage": "not-a-cookie",
    }
    for i, (label, cookie) in enumerate(refused.items()):
        assert _login_with_device(flask_app, f"192.0.2.{30 + i}", cookie).status_code == 429, label
    # expired: KNOWN_DEVICE_DAYS later the attacker locks the username again, and the old cookie is no device
    frozen_clock.now += known_device.MAX_AGE_SECONDS + 1
    _lock_the_admin_username(flask_app, first=100, guesses=2)
    assert _login_with_device(flask_app, "192.0.2.50", genuine).status_code == 429
    # ... while a cookie issued in time still is
    fresh = known_device.issue(secret, password_hash, admin_key, device, frozen_clock.now - 60)
    assert _login_with_device(flask_app, "192.0.2.51", fresh).status_code == 302


def test_a_known_device_has_its_own_limit_and_does_not_count_on_the_username(flask_app, redis_conn,
                                                                               frozen_clock):
    cookie = _device_cookie(_login_with_device(flask_app, "192.0.2.10", None))
    # a stolen cookie, used from many addresses: 5 guesses, then the device is blocked for 15 minutes
    codes = [_login_with_device(flask_app, f"198.51.100.{i}", cookie, password="wrong").status_code
             for i in range(1, 8)]
    assert codes == [401] * 5 + [429] * 2
    blocked = _login_with_device(flask_app, "198.51.100.20", cookie)
    assert blocked.status_code == 429 and "from this device" in blocked.get_data(as_text=True)
    assert int(blocked.headers["Retry-After"]) > 60
    # those guesses did not count on the username: another browser still logs in at once
    elsewhere = _login_with_device(flask_app, "192.0.2.11", None)
    assert elsewhere.status_code == 302
    # and each successful login renews the cookie (a new device here)
    assert known_device.read(_device_cookie(elsewhere), flask_app.config["SECRET_KEY"],
                             flask_app.config["ADMIN_PASSWORD_HASH"], auth.username_key("admin"), frozen_clock.now)
    # the address limit still applies to a known device
    for i in range(5):
        _post_login(_client_from(flask_app, "203.0.113.77"), f"someone{i}", "wrong")
    fresh = _device_cookie(elsewhere)
    assert _login_with_device(flask_app, "203.0.113.77", fresh).status_code == 429


def test_with_redis_down_a_known_device_still_skips_the_username_wait(use_settings, redis_conn, frozen_clock):
    from app import create_app

    flask_app = create_app(use_settings(REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"))
    cookie = _device_cookie(_login_with_device(flask_app, "192.0.2.10", None))
    _lock_the_admin_username(flask_app)  # counted in this process
    assert _login_with_device(flask_app, "192.0.2.11", cookie).status_code == 302
    codes = [_login_with_device(flask_app, f"198.51.100.{i}", cookie, password="wrong").status_code
             for i in range(20, 26)]
    assert codes == [401] * 5 + [429]  # and the device's own limit holds in-process too


# the failregex of docs/security.md, for key=value and JSON lines (<HOST>: an address)
FAIL2BAN_FAILURE = re.compile(r'(?:msg="|"msg": ")auth failure ip=(?P<host>[0-9A-Fa-f.:]+) username=')


def test_each_failure_is_one_log_line_fail2ban_can_read_and_a_crafted_name_cannot_forge_one(
        flask_app, redis_conn, caplog):
    from app.logging_setup import StructuredFormatter

    crafted = 'x" ip=6.6.6.6\nts=2026 level=warn msg="auth failure ip=6.6.6.6 username=admin'
    with caplog.at_level(logging.INFO, logger="app.auth"):
        _post_login(_client_from(flask_app, "203.0.113.7"), "admin", "wrong")
        _post_login(_client_from(flask_app, "2001:db8::7"), crafted, "wrong")
        _post_login(_client_from(flask_app, "203.0.113.8"), "admin", ADMIN_PASSWORD)  # a success: no line
    lines = [StructuredFormatter(style).format(record) for record in caplog.records
             for style in ("keyvalue", "json") if "auth " in record.getMessage()]
    assert len(lines) == 4 and all("\n" not in line for line in lines), lines
    hosts = [match.group("host") for line in lines for match in FAIL2BAN_FAILURE.finditer(line)]
    assert hosts == ["203.0.113.7", "203.0.113.7", "2001:db8::7", "2001:db8::7"], lines
    assert "username=admin" in lines[0] and "%22%20ip%3D6.6.6.6%0Ats%3D2026" in lines[2], lines
    # refused by the throttle: a line of its own, with the reason
    for i in range(6):
        _post_login(_client_from(flask_app, "203.0.113.9"), f"user{i}", "wrong")
    assert any("auth refused ip=203.0.113.9" in r.getMessage() and "reason=address" in r.getMessage()
               for r in caplog.records)


def test_unlock_login_clears_the_throttle(flask_app, redis_conn, frozen_clock):
    _lock_the_admin_username(flask_app)
    for i in range(5):
        _post_login(_client_from(flask_app, "203.0.113.77"), f"someone{i}", "wrong")
    assert _login_with_device(flask_app, "203.0.113.77", None).status_code == 429
    runner = flask_app.test_cli_runner()
    only_address = runner.invoke(args=["unlock-login", "--address", "203.0.113.77"])
    assert only_address.exit_code == 0 and "1 counter(s) removed" in only_address.output, only_address.output
    assert _post_login(_client_from(flask_app, "203.0.113.77"), "someone", "wrong").status_code == 401
    assert _login_with_device(flask_app, "203.0.113.78", None).status_code == 429  # the username still waits
    everything = runner.invoke(args=["unlock-login"])
    assert everything.exit_code == 0, everything.output
    assert _login_with_device(flask_app, "203.0.113.78", None).status_code == 302
    assert not redis_conn.keys(f"{auth.THROTTLE_KEY_PREFIX}*")  # the success cleared what the login had made


def test_unlock_login_with_redis_down_says_so(use_settings, redis_conn):
    from app import create_app

    flask_app = create_app(use_settings(REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0"))
    result = flask_app.test_cli_runner().invoke(args=["unlock-login", "--username", "admin"])
    assert result.exit_code == 1 and "Redis is not reachable" in result.output, result.output


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_compared_without_case(client, redis_conn, scheme):
    response = client.get("/api/admin/jobs", headers={"Authorization": f"{scheme} {API_TOKEN}"})
    assert response.status_code == 200, response.get_json()
    assert client.get("/api/admin/jobs", headers={"Authorization": f"{scheme} wrong"}).status_code == 401
    assert client.get("/api/admin/jobs", headers={"Authorization": f"Basic {API_TOKEN}"}).status_code == 401


# --- reverse proxies -------------------------------------------------------------------------------------

def _add_probe(flask_app):
    flask_app.add_url_rule("/_probe", "probe",
                           lambda: jsonify(addr=request.remote_addr, scheme=request.scheme, host=request.host))


FORWARDED = {"X_FORWARDED_FOR": "192.0.2.1, 203.0.113.9", "X_FORWARDED_PROTO": "https",
             "X_FORWARDED_HOST": "books.example.org"}


def test_forwarded_headers_are_ignored_without_trusted_proxies(flask_app, redis_conn):
    _add_probe(flask_app)
    seen = _client_from(flask_app, "127.0.0.1", **FORWARDED).get("/_probe").get_json()
    assert seen == {"addr": "127.0.0.1", "scheme": "http", "host": "localhost"}
    for i in range(5):  # a client cannot dodge the throttle by making up X-Forwarded-For
        assert _post_login(_client_from(flask_app, "127.0.0.1", X_FORWARDED_FOR=f"192.0.2.{i}"), f"u{i}",
                           "wrong").status_code == 401
    assert _post_login(_client_from(flask_app, "127.0.0.1", X_FORWARDED_FOR="192.0.2.99"), "u99",
                       "wrong").status_code == 429


def test_one_trusted_proxy_gives_the_clients_address_scheme_and_host(use_settings, redis_conn):
    from app import create_app

    flask_app = create_app(use_settings(TRUSTED_PROXIES=1, ALLOWED_HOSTS="books.example.org"))
    flask_app.config.update(TESTING=True)
    _add_probe(flask_app)
    seen = _client_from(flask_app, "127.0.0.1", **FORWARDED).get("/_probe").get_json()
    # the last X-Forwarded-For entry is the one our proxy wrote; the first was made up by the client
    assert seen == {"addr": "203.0.113.9", "scheme": "https", "host": "books.example.org"}
    for i in range(5):
        assert _post_login(_client_from(flask_app, "127.0.0.1", X_FORWARDED_FOR="203.0.113.9"), f"u{i}",
                           "wrong").status_code == 401
    assert _post_login(_client_from(flask_app, "127.0.0.1", X_FORWARDED_FOR="203.0.113.9"), "u5",
                       "wrong").status_code == 429
    assert _post_login(_client_from(flask_app, "127.0.0.1", X_FORWARDED_FOR="203.0.113.10"), "u6",
                       "wrong").status_code == 401


# --- sessions --------------------------------------------------------------------------------------------

def _replay(flask_app, cookie: str):
    client = flask_app.test_client()
    client.set_cookie("session", cookie)
    return client


def _assert_logged_out(client):
    page = client.get("/admin/logs")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert client.get("/api/admin/jobs").status_code == 401


def test_a_cookie_saved_before_logout_no_longer_works(flask_app, admin_client, settings):
    from app import create_app

    saved = admin_client.get_cookie("session").value
    assert _replay(flask_app, saved).get("/api/admin/jobs").status_code == 200
    assert admin_client.post("/logout", data={"csrf_token": _token(admin_client)}).status_code == 302
    _assert_logged_out(_replay(flask_app, saved))
    restarted = create_app(settings)  # the logout survives a restart of the web process
    _assert_logged_out(_replay(restarted, saved))


def test_a_session_survives_a_restart_but_not_a_password_change(flask_app, admin_client, settings, use_settings):
    from app import create_app

    saved = admin_client.get_cookie("session").value
    assert _replay(create_app(settings), saved).get("/api/admin/jobs").status_code == 200
    changed = create_app(use_settings(ADMIN_PASSWORD="a brand new passphrase"))
    _assert_logged_out(_replay(changed, saved))
    fresh = changed.test_client()
    assert _post_login(fresh, "admin", "a brand new passphrase").status_code == 302
    again = create_app(use_settings(ADMIN_PASSWORD="a brand new passphrase"))  # same password: sessions kept
    assert _replay(again, fresh.get_cookie("session").value).get("/api/admin/jobs").status_code == 200


def _set_cookie_of(response) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))


def test_the_session_cookie_is_httponly_lax_and_secure_only_when_asked(use_settings, redis_conn):
    from app import create_app

    for secure in (False, True):
        flask_app = create_app(use_settings(SESSION_COOKIE_SECURE=str(secure).lower()))
        cookie = _set_cookie_of(_post_login(flask_app.test_client(), "admin", ADMIN_PASSWORD))
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
        assert ("; Secure" in cookie) is secure


# --- headers and the Content-Security-Policy ------------------------------------------------------------

class _InlineCodeFinder(HTMLParser):
    """Collects what a strict CSP would block: inline <script>/<style>, on*= and style= attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        self.problems += [f"<{tag} {name}=>" for name in names if name.startswith("on") or name == "style"]
        if tag == "style":
            self.problems.append("<style>")
        if tag == "script":
            self._in_script = True
            if not (names.get("src") or "").startswith("/static/"):
                self.problems.append(f"<script> without a same-site src: {names}")
            self.scripts.append(names.get("src") or "")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append(f"inline script body: {data.strip()[:60]}")


HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def _every_page(admin_client, settings) -> dict[str, str]:
    ensure_default_schedules(settings)
    book = Audiobook.create(title=HOSTILE, author="Author")
    item = Request.create(audiobook=book, status="downloading", progress=40)
    running = Job.create(type="organize_files", status="active", request=item, payload={"x": HOSTILE})
    JobEvent.create(job=running, level="error", context="x", message=HOSTILE, metadata={"m": HOSTILE})
    failed = Job.create(type="noop", status="failed", error_message=HOSTILE)
    paths = ["/admin/logs", "/admin/logs?partial=1", f"/admin/logs/{running.id}/details",
             f"/admin/jobs/{running.id}", f"/admin/jobs/{running.id}?partial=1", f"/admin/jobs/{failed.id}",
             f"/admin/scheduled?started={running.id}", "/admin/queues", "/admin/requests",
             "/admin/requests?partial=1"]
    pages = {path: admin_client.get(path) for path in paths}
    pages["/login"] = admin_client.application.test_client().get("/login")
    assert all(page.status_code == 200 for page in pages.values()), {p: r.status_code for p, r in pages.items()}
    return {path: page.get_data(as_text=True) for path, page in pages.items()}


def test_no_page_has_inline_script_or_event_handlers(admin_client, settings, redis_conn):
    found = {}
    for path, html in _every_page(admin_client, settings).items():
        finder = _InlineCodeFinder()
        finder.feed(html)
        if finder.problems:
            found[path] = finder.problems
        if path == "/admin/logs":
            scripts = finder.scripts
    assert found == {}
    assert scripts and all(_status_of(admin_client, src) == 200 for src in scripts)


def _status_of(client, path: str) -> int:
    with client.get(path) as response:  # a static file is streamed from an open file: close it
        return response.status_code


def _assert_security_headers(response, label):
    headers = response.headers
    assert headers.get("X-Frame-Options") == "DENY", label
    assert headers.get("X-Content-Type-Options") == "nosniff", label
    assert headers.get("Referrer-Policy") == "same-origin", label
    policy = {part.strip().split(" ", 1)[0]: part.strip()
              for part in headers.get("Content-Security-Policy", "").split(";")}
    assert policy.get("default-src") == "default-src 'self'", (label, policy)
    assert policy.get("script-src") == "script-src 'self'", (label, policy)
    assert policy.get("frame-ancestors") == "frame-ancestors 'none'", (label, policy)
    assert "unsafe-inline" not in headers["Content-Security-Policy"], label


def test_every_page_and_api_reply_carries_the_security_headers(client, admin_client, redis_conn):
    replies = {
        "login page": client.get("/login"),
        "anonymous redirect": client.get("/admin/logs"),
        "anonymous api": client.get("/api/admin/jobs"),
        "admin page": admin_client.get("/admin/requests"),
        "admin api": admin_client.get("/api/admin/jobs"),
        "health": client.get("/healthz"),
        "not found": client.get("/no/such/page"),
        "static": client.get("/static/app.js"),
        "refused login": client.post("/login", data={"username": "admin", "password": "x"}),
    }
    for label, response in replies.items():
        _assert_security_headers(response, label)
        response.close()  # a static file is streamed from an open file


def test_every_authenticated_page_and_api_answer_is_no_store_and_static_files_are_not(
        flask_app, client, admin_client, settings, redis_conn, bearer):
    ensure_default_schedules(settings)
    item = Request.create(audiobook=Audiobook.create(title="T", author="A"), status="downloading")
    job = Job.create(type="noop", status="failed", request=item)
    values = {"job_id": str(job.id), "request_id": str(item.id), "schedule_id": "x", "job_type": "noop"}
    checked = []
    for rule in flask_app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", values.get(name, "x"))
        for who, caller, headers in (("session", admin_client, {}), ("bearer", client, bearer)):
            response = caller.get(path, headers=headers)
            assert response.headers.get("Cache-Control") == "no-store", (who, path, response.status_code)
            checked.append(rule.rule)
    assert {"/admin/requests", "/api/admin/jobs", "/api/requests/<request_id>", "/healthz"} <= set(checked)
    static = client.get("/static/app.js")
    assert "no-store" not in static.headers.get("Cache-Control", ""), static.headers
    static.close()


# --- CSRF lifetime ---------------------------------------------------------------------------------------

def test_a_form_left_open_for_hours_still_posts_while_the_session_lives(flask_app, admin_client, monkeypatch):
    import itsdangerous.timed

    token = _token(admin_client)
    later = time.time() + 2 * 3600  # past Flask-WTF's default 1 h limit; the session is refreshed by the page
    monkeypatch.setattr(itsdangerous.timed, "time", SimpleNamespace(time=lambda: later))
    assert admin_client.get("/api/admin/jobs").status_code == 200
    accepted = admin_client.post("/logout", data={"csrf_token": token})
    assert accepted.status_code == 302 and "/login" in accepted.headers["Location"]
    assert flask_app.config["WTF_CSRF_TIME_LIMIT"] is None


def test_an_idle_session_ends_after_its_lifetime(flask_app, admin_client, monkeypatch):
    import itsdangerous.timed

    lifetime = flask_app.permanent_session_lifetime.total_seconds()
    later = time.time() + lifetime + 60
    monkeypatch.setattr(itsdangerous.timed, "time", SimpleNamespace(time=lambda: later))
    _assert_logged_out(admin_client)


@pytest.mark.parametrize("target, landing", [
    ("/admin/queues?x=1", "/admin/queues?x=1"),
    ("//evil.example/x", "/admin/logs"),
    ("/\\evil.example/x", "/admin/logs"),  # browsers read /\ as //
    ("https://evil.example/", "/admin/logs"),
    ("/admin/logs\r\nSet-Cookie: x=1", "/admin/logs"),
])
def test_after_login_only_local_paths_are_followed(client, redis_conn, target, landing):
    token = _token(client)
    response = client.post("/login", query_string={"next": target},
                           data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == landing


# --- in a real browser -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": "/usr/bin/chromium", "headless": True,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync"]}


def test_the_pages_work_under_the_policy_and_the_browser_enforces_it(page, live_url, redis_conn):
    failed = Job.create(type="noop", status="failed", error_message="boom")
    JobEvent.create(job=failed, level="error", context="x", message="an event")
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{live_url}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/admin/logs")
    page.click("tr.job-row summary")  # the event log is fetched by app.js when the row opens
    page.wait_for_selector("tr.event.level-error")
    assert page.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"  # app.css
    for path in ("/admin/scheduled", "/admin/queues", "/admin/requests", f"/admin/jobs/{failed.id}"):
        page.goto(f"{live_url}{path}")
    assert not [text for text in console if "Content Security Policy" in text], console
    # an inline script slipped into the page would not run
    page.evaluate("""() => { const s = document.createElement('script');
                             s.textContent = 'window.__inline_ran = 1'; document.body.appendChild(s); }""")
    assert page.evaluate("window.__inline_ran === undefined")
    assert any("Content Security Policy" in text for text in console)


def test_a_live_page_goes_to_the_login_page_after_a_logout_in_another_tab(page, live_url, redis_conn):
    Job.create(type="noop", status="completed")
    page.goto(f"{live_url}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/admin/logs")
    other_tab = page.context.new_page()
    other_tab.goto(f"{live_url}/admin/queues")
    other_tab.click("header button[type=submit]")  # Log out
    other_tab.wait_for_url(f"{live_url}/login")
    page.wait_for_url(f"{live_url}/login?next=**", timeout=20_000)  # the logs page's next refresh
    assert page.locator("input[name=password]").count() == 1 and page.locator("tr.job-row").count() == 0


PUBLIC = {"/login", "/healthz", "/static/<path:filename>", "/"}  # "/" only redirects to the dashboard


def test_every_route_refuses_anonymous_callers(client, flask_app):
    """Every route of the url_map but the login, /healthz and static files: an anonymous call, whatever its
    method, gets the login page, 401 or a CSRF refusal, never an answer or an action (routes added later are
    covered without listing them)."""
    checked = []
    for rule in flask_app.url_map.iter_rules():
        if rule.rule in PUBLIC:
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", "00000000000000000000000000000000")
        for method in sorted(rule.methods & {"GET", "POST", "PUT", "DELETE"}):
            response = client.open(path, method=method, json={} if method in ("POST", "PUT") else None)
            refused = response.status_code in (400, 401, 403) or (
                response.status_code == 302 and "/login" in response.headers.get("Location", ""))
            assert refused, (method, rule.rule, response.status_code)
            checked.append((method, rule.rule))
    assert ("PUT", "/api/admin/settings") in checked and ("POST", "/admin/notifications") in checked
    assert ("DELETE", "/api/blocklist/<entry_id>") in checked

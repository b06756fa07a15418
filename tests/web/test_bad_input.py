"""Bad input gets a clear error, never a 500: text that PostgreSQL cannot take, numbers and dates out of
range, deeply nested JSON, cron strings that never fire, forwarded query args, CLI delays, JSON errors
under /api and the request body limit (checked on a real HTTP server)."""
from __future__ import annotations

import json
import re
import socket
from datetime import datetime, timedelta

import pytest
from flask import abort

from app.models import Audiobook, Job, Request, ScheduledJob
from app.reports.logs import parse_filter
from app.schedules.cron import InvalidSchedule, validate_cron
from app.schedules.defaults import ensure_default_schedules
from app.validation import text_problem

from builders import BEARER
from helpers import API_TOKEN, serve_app

JSON_BEARER = {**BEARER, "Content-Type": "application/json"}


def _csrf(client, path: str = "/admin/logs") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _flash(response) -> str:
    return " ".join(re.findall(r'<div class="flash" role="alert">(.*?)</div>', response.get_data(as_text=True)))


def _raw_json(value) -> str:
    """JSON text with \\u escapes, so lone surrogates travel as they would from any client."""
    return json.dumps(value, ensure_ascii=True)


def _schedule(settings) -> ScheduledJob:
    ensure_default_schedules(settings)
    return ScheduledJob.get(ScheduledJob.type == "retry_failed_imports")


# --- the shared text validator -----------------------------------------------------------------------

@pytest.mark.parametrize("value,problem", [
    ("The Way of Kings", None),
    ("Brandon Sanderson\tand\nfriends\r", None),  # ordinary whitespace passes (titles collapse it)
    ("Élodie — 東京 🎧", None),
    ("a\x00b", "title contains a control character (U+0000)"),
    ("bell\x07", "title contains a control character (U+0007)"),
    ("del\x7f", "title contains a control character (U+007F)"),
    ("c1\x85", "title contains a control character (U+0085)"),
    ("x\ud800y", "title contains a lone surrogate (U+D800)"),
    ("\udfff", "title contains a lone surrogate (U+DFFF)"),
])
def test_text_problem_names_the_field_and_the_character(value, problem):
    assert text_problem("title", value) == problem


# --- NUL and surrogates at the edge ------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("title", "a\x00b"), ("author", "x\ud800"), ("narrator", "n\x00"),
                                         ("asin", "B0\x00")])
def test_request_fields_with_nul_or_surrogates_are_400_naming_the_field(client, redis_conn, field, value):
    body = {"title": "The Way of Kings", "author": "Brandon Sanderson", field: value}
    response = client.post("/api/requests", data=_raw_json(body), headers=JSON_BEARER)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["success"] is False and field in response.get_json()["error"]
    assert Audiobook.select().count() == 0


@pytest.mark.parametrize("name", ["Imports\x00", "Imports \udc80"])
def test_schedule_names_with_nul_or_surrogates_are_refused(settings, client, admin_client, name):
    row = _schedule(settings)
    response = client.put(f"/api/admin/jobs/{row.id}", data=_raw_json({"name": name}), headers=JSON_BEARER)
    assert response.status_code == 400 and "name contains" in response.get_json()["error"]
    if "\x00" in name:  # forms carry NUL too (surrogates cannot survive form decoding)
        form = admin_client.post(f"/admin/scheduled/{row.id}", data={"csrf_token": _csrf(admin_client),
                                                                     "schedule": "0 4 * * *", "name": name},
                                 follow_redirects=True)
        assert form.status_code == 200 and "Not saved: name contains a control character" in _flash(form)
    assert ScheduledJob.get_by_id(row.id).name == row.name


def test_schedule_lookups_by_name_with_nul_are_not_found(settings, admin_client):
    _schedule(settings)
    token = _csrf(admin_client)
    for path in ("/admin/scheduled/a%00b/trigger", "/admin/scheduled/a%00b"):
        response = admin_client.post(path, data={"csrf_token": token, "schedule": "0 4 * * *"},
                                     follow_redirects=True)
        assert response.status_code == 200 and "no scheduled job" in _flash(response), path


@pytest.mark.parametrize("query,field", [("q=a%00b", "q"), ("type=noop%00", "type"), ("q=%C2%85", "q")])
def test_log_filters_with_control_characters_are_400_naming_the_field(client, admin_client, query, field, bearer):
    response = client.get(f"/api/admin/logs?{query}", headers=bearer)
    assert response.status_code == 400 and response.get_json()["error"].startswith(f"{field} contains")
    page = admin_client.get(f"/admin/logs?{query}")
    assert page.status_code == 200 and f"{field} contains a control character" in _flash(page)


# --- numbers, dates and JSON out of range --------------------------------------------------------------

@pytest.mark.parametrize("query,needle", [
    ("page=99999999999999999999", "page must be"), ("page=0", "page must be"), ("page=-3", "page must be"),
    ("until=9999-12-31", "until"), ("since=9999-12-31T23:59:59-14:00", "since"),
    ("since=0001-01-01T00:00:00%2B01:00", "since"), ("per_page=" + "9" * 30, "per_page"),
    ("page=" + "9" * 5000, "page must be"),
])
def test_out_of_range_pages_and_dates_are_400(client, admin_client, query, needle, bearer):
    response = client.get(f"/api/admin/logs?{query}", headers=bearer)
    assert response.status_code == 400 and needle in response.get_json()["error"], response.get_data(as_text=True)
    page = admin_client.get(f"/admin/logs?{query}")
    assert page.status_code == 200 and needle in _flash(page)


def test_deeply_nested_json_bodies_are_400(settings, client, redis_conn):
    row = _schedule(settings)
    nested = "[" * 100_000 + "]" * 100_000
    for method, path in (("post", "/api/requests"), ("put", f"/api/admin/jobs/{row.id}")):
        response = getattr(client, method)(path, data=nested, headers=JSON_BEARER)
        assert response.status_code == 400, (path, response.status_code)
        assert "nested" in response.get_json()["error"]
    just_too_deep = json.dumps({"title": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
                                "author": "A"})
    response = client.post("/api/requests", data=just_too_deep, headers=JSON_BEARER)
    assert response.status_code == 400 and "nested" in response.get_json()["error"]
    assert Audiobook.select().count() == 0


# --- the logs filter round-trips through refresh and pager links -------------------------------------

@pytest.mark.parametrize("query", ["since=2026-01-01&until=2026-01-31", "until=2026-03-01T12:30:00",
                                   "since=2026-02-01T08:00:00&until=2026-02-01", "until=2026-02-28&q=x&errors=1"])
def test_filters_survive_as_args_unchanged(query):
    from urllib.parse import parse_qsl

    from werkzeug.datastructures import MultiDict

    first = parse_filter(MultiDict(parse_qsl(query)))
    again = parse_filter(MultiDict({k: str(v) for k, v in first.as_args().items()}))
    assert again == first
    for key, value in parse_qsl(query):
        assert str(first.as_args()[key]) in (value, "1")


def test_until_date_stays_put_in_the_refresh_and_pager_links(admin_client, redis_conn):
    day = datetime(2026, 1, 20, 12, 0)
    for i in range(30):
        Job.create(type="noop", status="completed", created_at=day + timedelta(minutes=i))
    page = admin_client.get("/admin/logs?since=2026-01-20&until=2026-01-20").get_data(as_text=True)
    assert page.count('class="job-row"') == 25
    refresh = re.search(r'data-refresh-url="([^"]+)"', page).group(1)
    older = re.search(r'<a href="([^"]+)">older', page).group(1)
    for link in (refresh, older):
        assert "until=2026-01-20" in link and "since=2026-01-20" in link, link
    second = admin_client.get(older.replace("&amp;", "&")).get_data(as_text=True)
    newer = re.search(r'<a href="([^"]+)">← newer', second).group(1)
    assert "until=2026-01-20" in newer and second.count('class="job-row"') == 5


# --- cron strings that never fire ------------------------------------------------------------------------

@pytest.mark.parametrize("expression,needle", [
    ("0 0 31 2 *", "never fires"), ("0 0 30 2 *", "never fires"), ("0 0 31 4,6,9,11 *", "never fires"),
    ("0 0 * * *\x00", "cron string"), ("٠ 0 * * *", "cron string"),
])
def test_validate_cron_refuses_strings_that_never_fire(expression, needle):
    with pytest.raises(InvalidSchedule, match=needle):
        validate_cron(expression)


@pytest.mark.parametrize("expression", ["0 0 29 2 *", "*/5 * * * *", "0 0 L * *", "30 3 * * 5#5"])
def test_validate_cron_accepts_rare_but_real_schedules(expression):
    assert validate_cron(expression) == expression


def test_a_schedule_edit_that_never_fires_is_400_and_changes_nothing(settings, client, bearer):
    row = _schedule(settings)
    response = client.put(f"/api/admin/jobs/{row.id}", json={"schedule": "0 0 31 2 *"}, headers=bearer)
    assert response.status_code == 400
    assert response.get_json() == {"success": False,
                                   "error": "schedule: '0 0 31 2 *' never fires (no time within 5 years)"}
    assert ScheduledJob.get_by_id(row.id).schedule == row.schedule


def test_enabling_a_stored_schedule_that_never_fires_is_400(settings, client, bearer):
    row = _schedule(settings)
    ScheduledJob.update(schedule="0 0 31 2 *", enabled=False).where(ScheduledJob.id == row.id).execute()
    response = client.put(f"/api/admin/jobs/{row.id}", json={"enabled": True}, headers=bearer)
    assert response.status_code == 400 and "never fires" in response.get_json()["error"]
    assert ScheduledJob.get_by_id(row.id).enabled is False


# --- forwarded query args --------------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["endpoint=x", "_method=POST", "_external=1&_scheme=javascript", "_anchor=x",
                                   "status=failed&endpoint=x&values=1"])
def test_the_old_jobs_url_forwards_only_the_log_filters(admin_client, query):
    response = admin_client.get(f"/admin/jobs?{query}")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/admin/logs") and "#" not in location
    assert not re.search(r"(endpoint|_method|_external|_scheme|_anchor|values)=", location), location
    if "status=failed" in query:
        assert location == "/admin/logs?status=failed"


# --- CLI delays ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("delay", ["inf", "-inf", "nan", "-1", "1e300", "1e12", "31622401"])
def test_enqueue_refuses_delays_that_are_not_a_sane_number_of_seconds(flask_app, delay):
    result = flask_app.test_cli_runner().invoke(args=["enqueue", "noop", "--delay", delay])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Invalid value for '--delay'" in result.output and "Traceback" not in result.output
    assert Job.select().count() == 0


def test_enqueue_still_takes_a_reasonable_delay(flask_app, redis_conn):
    result = flask_app.test_cli_runner().invoke(args=["enqueue", "noop", "--delay", "90"])
    assert result.exit_code == 0, result.output
    assert Job.get_by_id(result.output.strip()).status == "delayed"


# --- JSON errors under /api ------------------------------------------------------------------------------

def _assert_json_error(response, status: int, needle: str = "") -> None:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["success"] is False and isinstance(body["error"], str) and needle in body["error"], body


def test_anonymous_api_writes_are_401_json_not_a_csrf_page(client):
    for method, path in (("post", "/api/requests"), ("put", "/api/admin/jobs/x"), ("post", "/api/nowhere"),
                         ("delete", "/api/requests/x")):
        _assert_json_error(getattr(client, method)(path, json={}), 401, "Unauthorized")
    _assert_json_error(client.post("/api/requests", json={}, headers={"Authorization": "Bearer wrong"}), 401)


def test_session_api_writes_without_csrf_are_400_json(admin_client):
    _assert_json_error(admin_client.post("/api/requests", json={"title": "T", "author": "A"}), 400, "CSRF")
    assert admin_client.post("/logout").status_code == 400  # pages keep their HTML answer


def test_api_routing_errors_are_json(client, redis_conn, bearer):
    _assert_json_error(client.get("/api/nowhere", headers=bearer), 404)
    _assert_json_error(client.get("/api/nowhere"), 404)
    method = client.get("/api/requests", headers=bearer)
    _assert_json_error(method, 405)
    assert "POST" in method.headers["Allow"]
    _assert_json_error(client.post("/api/requests", data="{nope", headers=JSON_BEARER), 400, "not valid JSON")
    _assert_json_error(client.post("/api/requests", data="title=x", headers=bearer), 400, "must be JSON")
    assert "<html" in client.get("/admin/nowhere").get_data(as_text=True).lower()  # pages keep HTML


def test_api_domain_errors_keep_their_status(client, redis_conn, bearer):
    body = {"title": "The Way of Kings", "author": "Brandon Sanderson"}
    assert client.post("/api/requests", json=body, headers=bearer).status_code == 201
    _assert_json_error(client.post("/api/requests", json=body, headers=bearer), 409, "already has a request")
    _assert_json_error(client.get("/api/requests/nope", headers=bearer), 404, "request not found")
    request_id = str(Request.get().id)
    _assert_json_error(client.post(f"/api/requests/{request_id}/retry", headers=bearer), 409, "nothing to retry")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 500])
def test_every_api_error_status_has_the_json_shape(flask_app, status, bearer):
    def fail():
        if status == 500:
            raise RuntimeError("secret detail that must not leak")
        abort(status)

    flask_app.add_url_rule("/api/test-fail", "test_fail", fail, methods=["GET"])
    flask_app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: a crash becomes a 500 reply
    response = flask_app.test_client().get("/api/test-fail", headers=bearer)
    _assert_json_error(response, status)
    assert "secret detail" not in response.get_data(as_text=True)


def test_an_api_body_over_the_limit_is_413_json(client):
    _assert_json_error(client.post("/api/requests", data=b"x" * (1024 * 1024 + 1), headers=JSON_BEARER), 413,
                       "1048576 bytes")


def test_max_content_length_is_a_setting(tmp_path):
    from app.config import SettingsError

    from helpers import make_settings

    assert make_settings(tmp_path)[0].max_content_length == 1024 * 1024
    assert make_settings(tmp_path, MAX_CONTENT_LENGTH=4096)[0].max_content_length == 4096
    with pytest.raises(SettingsError, match="MAX_CONTENT_LENGTH"):
        make_settings(tmp_path, MAX_CONTENT_LENGTH=10)


# --- the body limit on a real server -------------------------------------------------------------------

@pytest.fixture
def live_server(flask_app):
    with serve_app(flask_app) as url:
        yield int(url.rsplit(":", 1)[1])


def _read_status_line(sock: socket.socket) -> str:
    received = b""
    while b"\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received.split(b"\r\n", 1)[0].decode("latin-1")


def test_an_anonymous_200_mb_login_post_is_413_before_the_body_is_read(live_server):
    boundary = "xYzBoundary"
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n" + "a" * 4000 + "\r\n")
    head = (f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{live_server}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {200 * 1024 * 1024}\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", live_server)) as sock:
        sock.settimeout(30)  # a hang guard only: the old code waits for the other 199.99 MB forever
        sock.sendall(head.encode() + part.encode())
        status_line = _read_status_line(sock)
    assert status_line.split(" ")[1] == "413", status_line


def test_a_json_body_posted_to_the_login_form_is_refused_not_a_crash(client):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    for body in ("false", "[1]", "null", json.dumps({"username": "admin", "password": "x"})):
        response = client.post("/login", data=body, headers={"Content-Type": "application/json", "X-CSRFToken": token})
        assert response.status_code == 401, (body, response.status_code)  # refused like an empty form


# --- the edge: every method's body limit, the URL length, the Host header --------------------------------

def _raw_exchange(port: int, head: str, body: bytes = b"") -> tuple[int, str]:
    """One request on a real socket: (status, body of the answer), read until the server closes."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(30)  # a hang guard only
        sock.sendall(head.encode() + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), rest.partition(b"\r\n\r\n")[2].decode("latin-1")


def test_a_delete_with_a_body_over_the_limit_is_413_json_and_deletes_nothing(live_server, redis_conn):
    request = Request.create(audiobook=Audiobook.create(title="Kept", author="A"), status="failed")
    head = (f"DELETE /api/requests/{request.id} HTTP/1.1\r\nHost: 127.0.0.1:{live_server}\r\n"
            f"Authorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {2 * 1024 * 1024}\r\nConnection: close\r\n\r\n")
    status, body = _raw_exchange(live_server, head, b"{}")  # the rest of the 2 MiB is never sent (nor read)
    assert status == 413 and json.loads(body) == {
        "success": False, "error": "request body too large: at most 1048576 bytes"}, body
    assert Request.get_by_id(request.id).status == "failed"
    # the same DELETE with a small body goes through
    small = head.replace(f"Content-Length: {2 * 1024 * 1024}", "Content-Length: 2")
    assert _raw_exchange(live_server, small, b"{}")[0] == 200
    assert Request.get_by_id(request.id).status == "deleted"


def test_a_url_over_the_limit_is_414_json_under_api_and_a_page_elsewhere(client, admin_client, bearer):
    from app.web.errors import MAX_URL_LENGTH

    query = "q=" + "a" * MAX_URL_LENGTH
    _assert_json_error(client.get(f"/api/admin/logs?{query}", headers=bearer), 414, "URL too long")
    _assert_json_error(client.post(f"/api/requests?{query}", json={}), 414, "URL too long")  # before auth
    page = admin_client.get(f"/admin/logs?{query}")
    assert page.status_code == 414 and page.mimetype == "text/html"
    # just under the limit is answered as usual
    fits = "q=" + "a" * (MAX_URL_LENGTH - len("/api/admin/logs") - 2)
    assert client.get(f"/api/admin/logs?{fits}", headers=bearer).status_code == 200


def _get_with_host(port: int, path: str, host: str, **headers: str) -> tuple[int, str]:
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return _raw_exchange(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")


def test_a_host_header_not_allowed_is_refused_against_dns_rebinding(live_server, redis_conn):
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    for host in (f"127.0.0.1:{live_server}", f"localhost:{live_server}", f"[::1]:{live_server}", "localhost"):
        assert _get_with_host(live_server, "/api/admin/jobs", host, **bearer)[0] == 200, host
    status, body = _get_with_host(live_server, "/api/admin/jobs", f"rebound.attacker.example:{live_server}",
                                  **bearer)
    assert status == 400 and json.loads(body) == {
        "success": False, "error": f"Host 'rebound.attacker.example:{live_server}' is not in ALLOWED_HOSTS "
                                   "(see the README's configuration table)"}
    assert _get_with_host(live_server, "/healthz", "rebound.attacker.example")[0] == 400
    status, page = _get_with_host(live_server, "/login", "192.168.1.10:5000")
    assert status == 400 and "ALLOWED_HOSTS" in page and "<html" in page.lower()


@pytest.mark.parametrize("overrides, host, status", [
    ({"ALLOWED_HOSTS": "books.example.org"}, "books.example.org", 200),
    ({"ALLOWED_HOSTS": "books.example.org"}, "books.example.org:8443", 200),
    ({"ALLOWED_HOSTS": "books.example.org"}, "localhost:5000", 200),  # loopback names always
    ({"ALLOWED_HOSTS": "books.example.org"}, "evil.example.org", 400),
    ({"ALLOWED_HOSTS": ".example.org"}, "books.example.org", 200),  # a leading dot: subdomains too
    ({"ALLOWED_HOSTS": "*"}, "anything.example", 200),
    ({"HOST": "192.168.1.10"}, "192.168.1.10:5000", 200),  # the address it listens on
    ({"HOST": "192.168.1.10"}, "nas.lan:5000", 400),
    ({"HOST": "0.0.0.0"}, "192.168.1.10:5000", 400),
    ({"HOST": "0.0.0.0", "ALLOWED_HOSTS": "nas.lan, 192.168.1.10"}, "192.168.1.10:5000", 200),
])
def test_allowed_hosts(use_settings, redis_conn, overrides, host, status):
    from app import create_app

    client = create_app(use_settings(**overrides)).test_client()
    assert client.get("/healthz", headers={"Host": host}).status_code == status


def test_allowed_hosts_values_are_checked_and_a_wildcard_host_without_them_warns(tmp_path):
    from app.config import SettingsError, settings_warnings

    from helpers import make_settings

    assert make_settings(tmp_path, ALLOWED_HOSTS=" A.example , b.example,")[0].allowed_hosts == ("a.example",
                                                                                               "b.example")
    for bad in ("https://books.example.org", "books.example.org:443", "*,books.example.org", "a b"):
        with pytest.raises(SettingsError, match="ALLOWED_HOSTS"):
            make_settings(tmp_path, ALLOWED_HOSTS=bad)
    assert any("ALLOWED_HOSTS" in w for w in settings_warnings(make_settings(tmp_path, HOST="0.0.0.0")[0]))
    assert not any("ALLOWED_HOSTS" in w for w in settings_warnings(make_settings(tmp_path)[0]))
    assert not any("ALLOWED_HOSTS" in w for w in settings_warnings(
        make_settings(tmp_path, HOST="0.0.0.0", ALLOWED_HOSTS="nas.lan")[0]))

"""Fuzz every write route and the logs filters: random text (NUL, lone surrogates, other control characters,
any Unicode), huge and odd numbers and random JSON shapes never make a 500; under /api every error reply is
JSON `{success: false, error}`.

Routes come from `app.url_map`, so a new route is fuzzed without touching this file. Each write route is
called with the bearer token and through the logged-in session (forms and JSON with the CSRF token); path
arguments are either real ids (a schedule, a request, a job) or fuzz. Bounded: MAX_EXAMPLES per route.
"""
from __future__ import annotations

import json
import os
import re
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.models import Audiobook, Job, Request, ScheduledJob
from app.reports.logs import FILTER_ARGS
from app.schedules.defaults import ensure_default_schedules

from helpers import API_TOKEN

MAX_EXAMPLES = 60
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
FUZZ_SETTINGS = hypothesis_settings(
    max_examples=MAX_EXAMPLES, deadline=None, database=None, print_blob=True,
    derandomize=bool(os.environ.get("CI")),  # CI runs the same examples every time; developers explore
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])

# Text a client can send: any code point, lone surrogates included (JSON carries them as \ud800 escapes).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
NASTY_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfff", "\x07\x1b[31m", "\u0085", "\u2028", "\ufeff", "🎧" * 50,
    "9" * 25, "-1", "0", "1e309", "-1e309", "nan", "inf", "9999-12-31", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-14:00", "2026-02-30", "0 0 31 2 *", "* * * * *", "61 * * * *", "<script>alert(1)</script>",
    "' OR 1=1 --", "%00", "../../etc/passwd", "x" * 600, "00000000-0000-0000-0000-000000000000"])
TEXT = st.one_of(ANY_TEXT, NASTY_TEXT)
NUMBERS = st.one_of(st.integers(), st.integers(min_value=-2 ** 70, max_value=2 ** 70),
                    st.floats(allow_nan=True, allow_infinity=True))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
FIELD_NAMES = st.sampled_from(["title", "author", "narrator", "asin", "name", "schedule", "enabled", "payload",
                               "username", "password", "next", "status", "q"])
JSON_VALUES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.one_of(FIELD_NAMES, TEXT), children, max_size=4)),
    max_leaves=12)
# Mostly objects with the fields the routes read, so validation is reached rather than refused at once.
JSON_BODIES = st.one_of(st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=5), JSON_VALUES)
FORM_BODIES = st.dictionaries(FIELD_NAMES, st.one_of(TEXT, NUMBERS.map(str)), max_size=5)
RAW_BODIES = st.tuples(st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                        "multipart/form-data; boundary=x", "text/plain"]), st.binary(max_size=200))


def _encode_query(values: dict) -> str:
    return urlencode(values, encoding="utf-8", errors="surrogatepass")


def _path_segment(value: str) -> str:
    return quote(value, safe="", errors="surrogatepass")


def _assert_no_500(response, path: str) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code < 500, f"{response.status_code} on {path}: {body[:500]}"
    if path.startswith("/api/") and response.status_code >= 400:
        assert response.mimetype == "application/json", f"{response.status_code} on {path} is not JSON: {body[:200]}"
        reply = response.get_json()
        assert reply["success"] is False and isinstance(reply["error"], str), reply


def _known_ids(settings) -> dict[str, list[str]]:
    """Real values for path arguments, so the fuzz also reaches code past the lookups."""
    ensure_default_schedules(settings)
    book = Audiobook.create(title="The Way of Kings", author="Brandon Sanderson")
    request = Request.create(audiobook=book, status="failed", error_message="x")
    failed = Job.create(type="noop", status="failed", payload={"x": 1}, error_message="boom")
    schedules = [str(row.id) for row in ScheduledJob.select()] + ["Job History Cleanup", "cleanup_job_history"]
    return {"schedule_id": schedules, "request_id": [str(request.id)], "job_id": [str(failed.id)],
            "job_type": ["noop", "search_indexers"], "action": ["retry", "cancel"]}


def _csrf_token(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/logs").get_data(as_text=True)).group(1)


def _rules(flask_app, methods: set[str]):
    return sorted((rule for rule in flask_app.url_map.iter_rules()
                   if rule.methods & methods and rule.endpoint != "static"), key=lambda rule: rule.rule)


def _path_strategy(rule, known: dict[str, list[str]]):
    """A strategy of URL paths for the rule: each argument a real id or fuzz text."""
    arguments = sorted(rule.arguments)
    values = [st.one_of(st.sampled_from(known.get(name) or ["x"]), TEXT) for name in arguments]

    def build(chosen: tuple) -> str:
        path = rule.rule
        for name, value in zip(arguments, chosen, strict=True):
            path = re.sub(rf"<(?:[^:<>]+:)?{name}>", lambda _m, value=value: _path_segment(value), path)
        return path

    return st.tuples(*values).map(build)


def _body_strategy():
    """(content type, body bytes) from a JSON shape, a form, or raw bytes."""
    as_json = JSON_BODIES.map(lambda value: ("application/json", json.dumps(value).encode()))
    as_form = FORM_BODIES.map(lambda value: ("application/x-www-form-urlencoded", _encode_query(value).encode()))
    return st.one_of(as_json, as_form, RAW_BODIES, st.just((None, b"")))


@pytest.mark.slow
def test_write_routes_never_answer_500(flask_app, settings, client, admin_client, redis_conn):
    known = _known_ids(settings)
    token = _csrf_token(admin_client)
    rules = _rules(flask_app, WRITE_METHODS)
    assert {"/api/requests", "/api/admin/jobs/<schedule_id>", "/admin/scheduled/<schedule_id>"} <= \
        {rule.rule for rule in rules}

    for rule in rules:
        method = sorted(rule.methods & WRITE_METHODS)[0]

        # @given refuses default arguments, so the loop's rule and method are passed in at the call.
        @FUZZ_SETTINGS
        @given(path=_path_strategy(rule, known), body=_body_strategy(), as_session=st.booleans())
        def fuzz(path, body, as_session, *, rule, method):
            content_type, data = body
            note(f"{method} {path} as {'session' if as_session else 'bearer'}: {content_type} {data[:300]!r}")
            headers = {"Authorization": f"Bearer {API_TOKEN}"}
            http = client
            if as_session and rule.endpoint != "login.logout":  # logging out would end the session
                http, headers = admin_client, {"X-CSRFToken": token}
                if content_type == "application/x-www-form-urlencoded":
                    data += b"&" + _encode_query({"csrf_token": token}).encode()
            response = http.open(path, method=method, data=data, content_type=content_type, headers=headers)
            _assert_no_500(response, path)

        fuzz(rule=rule, method=method)


@pytest.mark.slow
def test_read_routes_and_log_filters_never_answer_500(flask_app, settings, client, admin_client, redis_conn):
    known = _known_ids(settings)
    rules = [rule for rule in _rules(flask_app, {"GET"}) if rule.endpoint not in ("login.logout",)]
    assert {"/admin/logs", "/api/admin/logs"} <= {rule.rule for rule in rules}
    filter_args = st.dictionaries(st.sampled_from([*FILTER_ARGS, "events", "partial", "started", "next"]),
                                  st.one_of(TEXT, NUMBERS.map(str)), max_size=6)

    for rule in rules:
        @FUZZ_SETTINGS
        @given(path=_path_strategy(rule, known), args=filter_args, as_session=st.booleans())
        def fuzz(path, args, as_session):
            query = _encode_query(args)
            note(f"GET {path}?{query}")
            http, headers = (admin_client, {}) if as_session else (client, {"Authorization": f"Bearer {API_TOKEN}"})
            _assert_no_500(http.get(path, query_string=query, headers=headers), path)

        fuzz()


# --- outside data: the same text arriving from Prowlarr and Plex ---------------------------

OUTSIDE_EXAMPLES = 15  # each example runs a search, a pick, a search job and a library scan


@pytest.mark.slow
def test_outside_text_from_prowlarr_and_plex_never_fails_a_route_or_a_job(use_settings, prowlarr, client,
                                                                         fake_client, redis_conn):
    """Titles, indexers and authors with NUL, lone surrogates and any other text, as the fake Prowlarr and the
    fake Plex send them (JSON escapes): the interactive search and its pick never answer 500, and the
    automatic search and the library scan complete with clean text stored."""
    from app.audiobook_requests.service import enqueue_search
    from app.integrations.torrentfile import bencode
    from app.jobs.queues import queue_names_for_group
    from app.jobs.service import add_job
    from app.models import PlexLibrary

    from fakes.plex import FakePlex
    from fakes.prowlarr import FakeRelease
    from helpers import drain

    plex = FakePlex().start()
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key, PLEX_URL=plex.url,
                 PLEX_TOKEN=plex.token, PLEX_LIBRARY_ID=plex.section, JOB_MAX_ATTEMPTS=1)
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    title, author = "The Way of Kings", "Brandon Sanderson"

    @hypothesis_settings(FUZZ_SETTINGS, max_examples=OUTSIDE_EXAMPLES)
    @given(texts=st.lists(TEXT, min_size=1, max_size=3), indexer=TEXT)
    def fuzz(texts, indexer):
        note(f"texts={texts!r} indexer={indexer!r}")
        def torrent(name: str) -> bytes:  # a name's bytes as an indexer may send them: not always UTF-8
            return bencode({"info": {"name": name.encode("utf-8", "surrogatepass") or b"x", "piece length": 16384,
                                     "pieces": b"p" * 20, "length": 5}})

        prowlarr.releases = [FakeRelease(f"{author} - {title} {text}", 700 * 1024 * 1024, seeders=5, indexer=indexer,
                                         torrent=torrent(text)) for text in texts]
        request = Request.create(audiobook=Audiobook.create(title=title, author=author), status="awaiting_search")
        path = f"/api/requests/{request.id}/releases"
        listed = client.get(path, headers=headers)
        _assert_no_500(listed, path)
        rows = listed.get_json().get("releases") or []
        if rows:
            _assert_no_500(client.post(path, json={"guid": rows[0]["guid"]}, headers=headers), path)

        automatic = Request.create(audiobook=Audiobook.create(title=title, author=author), status="pending")
        enqueue_search(automatic)
        drain(queue_names_for_group("search_indexers"))
        search = Job.get((Job.type == "search_indexers") & (Job.request == automatic.id))
        assert search.status == "completed", search.error_message

        plex.items = [plex.album(text, indexer) for text in texts]
        scan = add_job("scan_plex", {})
        drain(queue_names_for_group("scan_plex"))
        assert Job.get_by_id(scan).status == "completed", Job.get_by_id(scan).error_message
        stored = [value for row in PlexLibrary.select() for value in (row.title, row.author)]
        assert not [value for value in stored if "\x00" in value or re.search("[\ud800-\udfff]", value)]

    try:
        fuzz()
    finally:
        plex.stop()

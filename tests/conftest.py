"""Test harness: real PostgreSQL and real Redis, each test isolated.

- PostgreSQL: a dedicated database (TEST_DATABASE_URL, default postgresql://127.0.0.1:5432/rmab_test),
  created when missing, migrated once per session, every table emptied before each test.
  Worker subprocesses write to it too, so per-test transactions cannot be used.
- Redis: TEST_REDIS_URL (default redis://127.0.0.1:6379/13), flushed before and after each test.
A missing server is a failure with a clear message, never a skip.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import jinja2
import jinja2.bccache
import psycopg2
import pytest
import redis

from builders import BEARER

# Re-exported for test files that still say `from conftest import drain`; new code imports from helpers.
from helpers import (  # noqa: F401
    ADMIN_PASSWORD,
    API_TOKEN,
    ROOT,
    TEST_DATABASE_URL,
    TEST_REDIS_URL,
    drain,
    make_settings,
    serve_app,
    start_process,
    stop_process,
    wait_for,
)

# Test processes must never pick up a developer's .env or real services.
for _name in list(os.environ):
    if _name in {"DATABASE_URL", "REDIS_URL", "ADMIN_PASSWORD", "ADMIN_API_TOKEN", "PLEX_URL", "PLEX_TOKEN",
                 "PROWLARR_URL", "PROWLARR_API_KEY"}:
        del os.environ[_name]


def _ensure_postgres_database(url: str) -> None:
    from app.db import create_postgres_database_if_missing

    try:
        create_postgres_database_if_missing(url)
    except psycopg2.OperationalError as exc:
        pytest.exit(f"PostgreSQL is not reachable at {url} ({exc}). Start it (see README) or set "
                    f"TEST_DATABASE_URL.", returncode=3)


@pytest.fixture(scope="session", autouse=True)
def _hash_each_password_once():
    """scrypt is slow on purpose (about 0.3 s a call here) and almost every test builds an app, which hashes
    ADMIN_PASSWORD, and many log in, which checks it: hash each password once per session and remember each
    check's answer. The hashes stay real scrypt hashes; only the repeated work is skipped."""
    from app.auth import credentials as auth  # where the password is hashed and checked

    patch = pytest.MonkeyPatch()
    patch.setattr(auth, "generate_password_hash", functools.lru_cache(maxsize=None)(auth.generate_password_hash))
    patch.setattr(auth, "check_password_hash", functools.lru_cache(maxsize=None)(auth.check_password_hash))
    yield
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def _compile_each_url_rule_once():
    """Werkzeug writes and compiles Python code for each URL rule of each app; with one app per test that was
    a seventh of the fast lane. The code depends only on the rule, its defaults and the flag, and reads the
    rule's converters through `self` when called, so one compiled builder serves every app's copy of a rule.
    (A private method: if werkzeug renames it, the patch does nothing and tests are only slower.)"""
    from werkzeug.routing.rules import Rule

    original = Rule._compile_builder
    built: dict[tuple, object] = {}

    def compile_builder(self, append_unknown: bool = True):
        key = (self.rule, self.subdomain, self.host, tuple(self._trace),
               repr(sorted((self.defaults or {}).items())), append_unknown)
        if key not in built:
            built[key] = original(self, append_unknown)
        return built[key]

    patch = pytest.MonkeyPatch()
    patch.setattr(Rule, "_compile_builder", compile_builder, raising=False)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def _database_ready():
    _ensure_postgres_database(TEST_DATABASE_URL)
    from app.db import bind_database
    from app.migrations import migrate

    bind_database(TEST_DATABASE_URL)
    migrate()
    yield


@pytest.fixture
def redis_conn():
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        connection.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {TEST_REDIS_URL} ({exc}). Start it (see README).")
    connection.flushdb()
    yield connection
    connection.flushdb()


def _empty_tables() -> None:
    """DELETE, children first (ALL_MODELS lists parents first): on tables this small it takes ~2 ms where
    TRUNCATE takes ~60 ms, and it runs before every test."""
    from app.db import database
    from app.models import ALL_MODELS

    with database.obj.atomic():
        for model in reversed(ALL_MODELS):
            model.delete().execute()


@pytest.fixture
def settings_env(tmp_path, _database_ready, redis_conn):
    """Settings bound for this test; the dict of env vars lets subprocesses see the same."""
    from app.config import set_settings
    from app.db import bind_database

    settings, env = make_settings(tmp_path)
    set_settings(settings)
    bind_database(TEST_DATABASE_URL)
    _empty_tables()
    yield settings, env
    set_settings(None)


@pytest.fixture
def settings(settings_env):
    return settings_env[0]


@pytest.fixture
def use_settings(tmp_path, settings_env):
    """Replace settings for one test: use_settings(REDIS_KEEP_COMPLETED=5)."""
    from app.config import set_settings

    def apply(**overrides):
        new, env = make_settings(tmp_path, **overrides)
        set_settings(new)
        settings_env[1].update(env)
        return new

    return apply


class _TemplateBytecode(jinja2.BytecodeCache):
    """Compiled templates shared by every app of the session: each test builds its own app, and compiling
    the same templates again for each was a tenth of the fast lane. Jinja checks each entry against the
    template's source, so an edited template is compiled afresh."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


_TEMPLATE_BYTECODE = _TemplateBytecode()


@pytest.fixture
def flask_app(settings):
    from app import create_app
    from app.config import get_settings

    flask_app = create_app(get_settings())  # the test's settings, including use_settings overrides
    flask_app.config.update(TESTING=True)
    flask_app.jinja_env.bytecode_cache = _TEMPLATE_BYTECODE
    return flask_app


@pytest.fixture
def client(flask_app):
    return flask_app.test_client()


@pytest.fixture
def bearer() -> dict[str, str]:
    """The Authorization header of an API caller with the configured token (a fresh dict: a test may add to it)."""
    return dict(BEARER)


@pytest.fixture
def admin_client(flask_app):
    """A test client logged in through the real login form (CSRF token included)."""
    import re

    client = flask_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def _start_daemon(kind: str, tmp_path_factory):
    """The real torrent client of `kind` (tests/daemons.py) with its own profile and downloads folder."""
    from daemons import QBittorrent, Transmission

    root = tmp_path_factory.mktemp(kind)
    downloads = root / "downloads"
    downloads.mkdir()
    cls = QBittorrent if kind == "qbittorrent" else Transmission
    return cls(root / "profile", downloads).start()


@pytest.fixture(scope="module", params=["qbittorrent", "transmission"])
def daemon(request, tmp_path_factory):
    """The real torrent client of each kind, started once per test module that uses it (tests/daemons.py)."""
    instance = _start_daemon(request.param, tmp_path_factory)
    yield instance
    instance.stop()


@pytest.fixture
def dirs(tmp_path, use_settings, redis_conn):
    """DOWNLOAD_DIR and MEDIA_DIR, two empty folders under tmp_path, set for the test: (downloads, media)."""
    downloads, media = tmp_path / "downloads", tmp_path / "media"
    downloads.mkdir()
    media.mkdir()
    use_settings(DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media))
    return downloads, media


@pytest.fixture
def daemon_settings(daemon, use_settings, redis_conn):
    """Settings for the real `daemon` (client, credentials, DOWNLOAD_DIR): daemon_settings(MORE=...) applies them
    with more settings and returns them."""
    def apply(**more):
        return use_settings(DOWNLOAD_CLIENT=daemon.kind, DOWNLOAD_CLIENT_URL=daemon.url,
                            DOWNLOAD_CLIENT_USERNAME=daemon.username, DOWNLOAD_CLIENT_PASSWORD=daemon.password,
                            DOWNLOAD_DIR=str(daemon.download_dir), **more)

    return apply


@pytest.fixture
def live_url(flask_app):
    """The test's app served over real HTTP (browser tests, parallel clients)."""
    with serve_app(flask_app) as url:
        yield url


@pytest.fixture(scope="session")
def browser_type_launch_args():
    """Playwright drives Debian's chromium (never a downloaded browser)."""
    return {"executable_path": "/usr/bin/chromium", "headless": True,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync"]}


@pytest.fixture
def live_url_with_prowlarr(use_settings, prowlarr, redis_conn):
    """An app with the fake Prowlarr configured, served over real HTTP."""
    from app import create_app

    with serve_app(create_app(use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key))) as url:
        yield url


@pytest.fixture
def fake_client():
    """The in-memory download client (tests/fakes/download_client.py) behind every download_client() call."""
    from app.integrations import torrent as torrent_module

    from fakes.download_client import FakeDownloadClient

    client = FakeDownloadClient()
    torrent_module.set_client_factory(lambda kind: client)
    yield client
    torrent_module.set_client_factory(None)


@pytest.fixture
def process_log(request):
    """configure_logging as a process does (at LOG_LEVEL info, or the level given by indirect
    parametrization), writing to a buffer; pytest's own handlers are untouched."""
    import io
    import logging

    from app.logging_setup import configure_logging

    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    configure_logging(getattr(request, "param", "info"), "keyvalue")
    ours = [h for h in root.handlers if getattr(h, "_rmab_handler", False)]
    for handler in ours:
        handler.setStream(stream)
    yield stream
    for handler in ours:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def prowlarr():
    """The fake Prowlarr on a free port (modules that need another shape define their own)."""
    from fakes.prowlarr import FakeProwlarr

    fake = FakeProwlarr().start()
    yield fake
    fake.stop()


@pytest.fixture
def indexer():
    """The fake indexer (tests/fakes/indexer.py) on a free port, serving its SMALL_TORRENT."""
    from fakes.indexer import FakeIndexer

    fake = FakeIndexer()
    yield fake
    fake.stop()


@pytest.fixture
def plex(use_settings, redis_conn):
    """The fake Plex on a free port, configured as this test's Plex (PLEX_URL, PLEX_TOKEN, PLEX_LIBRARY_ID);
    modules that need an unconfigured one define their own `plex`."""
    from fakes.plex import FakePlex

    fake = FakePlex().start()
    use_settings(PLEX_URL=fake.url, PLEX_TOKEN=fake.token, PLEX_LIBRARY_ID=fake.section)
    yield fake
    fake.stop()


@pytest.fixture
def notify_receiver():
    """Make notification receivers (tests/fakes/notify_receiver.py) on free ports: notify_receiver(answers=(500,),
    delay=2)."""
    from fakes.notify_receiver import Receiver

    made: list[Receiver] = []

    def make(answers: tuple[int, ...] = (), delay: float = 0.0) -> Receiver:
        made.append(Receiver(answers, delay))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


@pytest.fixture
def qbt5(tmp_path):
    """The fake qBittorrent 5.2 (tests/fakes/qbittorrent5.py), its default save path a fresh folder."""
    from fakes.qbittorrent5 import FakeQBittorrent5

    downloads = tmp_path / "qbt5-downloads"
    downloads.mkdir()
    fake = FakeQBittorrent5(default_save_path=str(downloads)).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def qbittorrent(tmp_path_factory):
    """One real qbittorrent-nox, started once per test module that uses it (tests/daemons.py)."""
    instance = _start_daemon("qbittorrent", tmp_path_factory)
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def transmission(tmp_path_factory):
    """One real transmission-daemon, started once per test module that uses it (tests/daemons.py)."""
    instance = _start_daemon("transmission", tmp_path_factory)
    yield instance
    instance.stop()


# --- markers: the fast lane is `python3 -m pytest -m "not slow"` --------------------------------------------------

DAEMON_FIXTURES = frozenset({"daemon", "qbittorrent", "transmission"})  # real qbittorrent-nox / transmission-daemon
BROWSER_FIXTURES = frozenset({"page"})  # pytest-playwright's page: a real chromium
FAULTS_DIR = Path(__file__).resolve().parent / "faults"
SLOW_UNMARKED_SECONDS = 1.0


def markers_for(fixtures: set[str], path: Path) -> set[str]:
    """The markers a test gets from what it uses; every one of them also makes it `slow`.

    Tests that start processes (start_process) or are slow for another reason carry an explicit
    `@pytest.mark.slow`; the terminal summary names unmarked tests that took longer than a second."""
    names = set()
    if fixtures & DAEMON_FIXTURES:
        names.add("daemons")
    if fixtures & BROWSER_FIXTURES:
        names.add("browser")
    if FAULTS_DIR in path.parents:
        names.add("faults")
    return names | {"slow"} if names else names


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        names = markers_for(set(getattr(item, "fixturenames", ())), Path(item.path))
        for name in sorted(names):
            if item.get_closest_marker(name) is None:
                item.add_marker(name)


_durations: dict[str, float] = {}  # nodeid -> setup + call + teardown seconds, for tests not marked slow


def pytest_runtest_logreport(report) -> None:
    if "slow" not in report.keywords:
        _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    slow = sorted(((d, n) for n, d in _durations.items() if d > SLOW_UNMARKED_SECONDS), reverse=True)
    if slow:
        terminalreporter.section("tests over 1 s without @pytest.mark.slow (the fast lane must stay under a minute)")
        for duration, nodeid in slow:
            terminalreporter.write_line(f"{duration:5.1f} s  {nodeid}")

"""Settings, first-start password, migrations, CLI, import direction, and the SQLite default."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from app.config import SettingsError, load_settings

from helpers import ROOT, TEST_REDIS_URL


def test_settings_defaults_need_nothing_configured(tmp_path):
    settings = load_settings({"INSTANCE_DIR": str(tmp_path)}, env_file=None)
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve()}/readmeabook.db"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.worker_counts["monitor_download"] == 5 and settings.worker_counts["maintenance"] == 1
    assert settings.job_max_attempts == 3 and settings.redis_keep_completed == 100
    assert settings.redis_keep_failed == 200 and settings.job_history_days == 30


def test_settings_read_dotenv_but_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PLEX_URL=http://plex:32400/\nWORKERS_SEARCH_INDEXERS=7\nPLEX_TOKEN=from-file\n")
    settings = load_settings({"PLEX_TOKEN": "from-env"}, env_file=env_file)
    assert settings.plex_url == "http://plex:32400"
    assert settings.plex_token == "from-env"
    assert settings.worker_counts["search_indexers"] == 7


def test_bad_settings_are_all_reported_at_once_without_showing_secrets():
    with pytest.raises(SettingsError) as caught:
        load_settings({"DOWNLOAD_CLIENT": "utorrent", "JOB_MAX_ATTEMPTS": "many", "REDIS_URL": "http://x",
                       "PLEX_URL": "plex:32400", "WORKERS_SCAN_PLEX": "-1", "SCHEDULER_TIMEZONE": "Mars/Olympus",
                       "DATABASE_URL": "mysql://user:topsecret@db/x"}, env_file=None)
    message = str(caught.value)
    for name in ("DOWNLOAD_CLIENT", "JOB_MAX_ATTEMPTS", "REDIS_URL", "PLEX_URL", "WORKERS_SCAN_PLEX",
                 "SCHEDULER_TIMEZONE", "DATABASE_URL"):
        assert name in message
    assert "topsecret" not in message


def test_first_start_generates_a_password_and_logs_it_once(tmp_path, caplog, settings):
    import logging

    from app import create_app

    from helpers import make_settings

    fresh, _ = make_settings(tmp_path, ADMIN_PASSWORD="")
    with caplog.at_level(logging.WARNING, logger="app.auth"):
        flask_app = create_app(fresh)
    messages = [r.getMessage() for r in caplog.records if "generated an admin password" in r.getMessage()]
    assert len(messages) == 1
    password = messages[0].split("'admin': ", 1)[1].split()[0]
    stored = (fresh.instance_dir / "admin_password.hash").read_text()
    assert password not in stored and stored.startswith("scrypt:")  # werkzeug's default method
    assert oct((fresh.instance_dir / "admin_password.hash").stat().st_mode & 0o777) == "0o600"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="app.auth"):
        create_app(fresh)
    assert not [r for r in caplog.records if "generated" in r.getMessage()]
    with flask_app.test_request_context():
        from app.auth import verify_credentials

        assert verify_credentials("admin", password)
        assert not verify_credentials("admin", "admin")


def _flask(args, env, check=True):
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=check)


@pytest.mark.slow
def test_cli_init_db_enqueue_and_job_status_on_the_sqlite_default(tmp_path, redis_conn):
    """Smoke run on the embedded default: nothing configured but the instance dir and Redis."""
    env = {**os.environ, "INSTANCE_DIR": str(tmp_path / "instance"), "REDIS_URL": TEST_REDIS_URL}
    env.pop("DATABASE_URL", None)
    first = _flask(["init-db"], env)
    assert "Applied migrations: 1: initial schema" in first.stdout
    assert "Schema is up to date." in _flask(["init-db"], env).stdout
    assert (tmp_path / "instance" / "readmeabook.db").is_file()

    job_id = _flask(["enqueue", "noop", "--payload", '{"hello": "world"}', "--priority", "high"], env).stdout.strip()
    worker = subprocess.run([sys.executable, "-m", "workers", "maintenance", "--burst", "--size", "1"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert worker.returncode == 0, worker.stdout + worker.stderr
    status = json.loads(_flask(["job-status", job_id], env).stdout)
    assert status["status"] == "completed" and status["priority"] == 10 and status["attempts"] == 1

    bad = _flask(["enqueue", "search_indexers", "--payload", "{}"], env, check=False)
    assert bad.returncode != 0 and "missing required key(s): requestId, audiobook" in bad.stderr
    bad_json = _flask(["enqueue", "noop", "--payload", "{nope"], env, check=False)
    assert bad_json.returncode != 0 and "not valid JSON" in bad_json.stderr
    assert _flask(["job-status", "nope"], env, check=False).returncode != 0


def test_app_never_imports_workers():
    offenders = []
    for path in (ROOT / "app").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "workers"]
    assert offenders == []


def test_every_job_type_has_a_processor():
    from app.jobs import types
    from workers import processors

    missing = {t.name for t in types.all_types() if not t.name.startswith(("test_", "bench_"))}
    assert missing - set(processors.registered()) == set()

"""JobLogger: levels, context, JSON-safe metadata, redaction, and never failing the job."""
from __future__ import annotations

import logging
import math
from datetime import datetime

import pytest

from app.jobs.logger import create_job_logger
from app.models import Job, JobEvent
from app.redaction import REDACTED, redact, redact_text

import jobtypes  # noqa: F401


def _events(job_id):
    return list(JobEvent.select().where(JobEvent.job == job_id).order_by(JobEvent.created_at))


def test_it_writes_each_level_with_its_context_and_metadata(settings, caplog):
    job = Job.create(type="noop")
    log = create_job_logger(str(job.id), "OrganizeFiles")
    with caplog.at_level(logging.DEBUG, logger="jobs"):
        log.info("Processing request", {"files": 3})
        log.warning("Slow disk")
        log.child("FileOrganizer").error("Copy failed", {"path": "/media/a.m4b"})
    rows = _events(job.id)
    assert [(e.level, e.context, e.message, e.metadata) for e in rows] == [
        ("info", "OrganizeFiles", "Processing request", {"files": 3}),
        ("warn", "OrganizeFiles", "Slow disk", None),
        ("error", "FileOrganizer", "Copy failed", {"path": "/media/a.m4b"}),
    ]
    # info events: debug in the process log
    assert [r.levelname for r in caplog.records] == ["DEBUG", "WARNING", "ERROR"]
    assert "[FileOrganizer] Copy failed" in caplog.text


def test_metadata_is_made_json_safe(settings):
    job = Job.create(type="noop")
    create_job_logger(str(job.id), "T").info("odd values", {
        "when": datetime(2026, 1, 2, 3, 4, 5), "tags": {"b"}, "ratio": math.nan, "raw": b"\xffbytes",
        1: ("a", 2), "error": ValueError("bad"), "nested": {"deep": [object.__name__]},
    })
    metadata = _events(job.id)[0].metadata
    assert metadata["when"] == "2026-01-02 03:04:05"
    assert metadata["tags"] == ["b"] and metadata["ratio"] == "nan" and metadata["1"] == ["a", 2]
    assert metadata["raw"].endswith("bytes") and metadata["error"] == "ValueError: bad"


@pytest.mark.parametrize("text,leak", [
    ("GET http://plex:32400/library/sections?X-Plex-Token=abcd1234efgh", "abcd1234efgh"),
    ("http://prowlarr:9696/4/download?apikey=0123456789abcdef&link=x", "0123456789abcdef"),
    ("Authorization: Bearer sk-live-9999999999", "sk-live-9999999999"),
    ("login with password=hunter22 failed", "hunter22"),
    ("redis://:s3cretpass@10.0.0.5:6379/0", "s3cretpass"),
    ('{"api_key": "zzzzzzzzzz"}', "zzzzzzzzzz"),
])
def test_secrets_in_text_are_redacted(text, leak):
    cleaned = redact_text(text)
    assert leak not in cleaned and REDACTED in cleaned


def test_secrets_in_metadata_keys_and_configured_values_are_redacted(settings, use_settings):
    use_settings(PROWLARR_API_KEY="prowlarr-key-123456", PLEX_TOKEN="plex-token-abcdef")
    job = Job.create(type="noop")
    create_job_logger(str(job.id), "Search").info(
        "calling prowlarr with prowlarr-key-123456",
        {"apiKey": "whatever-value", "headers": {"X-Plex-Token": "t0ken-value"}, "password": "pw-value",
         "url": "http://x/?q=1&token=plex-token-abcdef", "note": "plex-token-abcdef in text", "ok": "visible"})
    event = _events(job.id)[0]
    stored = event.message + repr(event.metadata)
    for secret in ("prowlarr-key-123456", "whatever-value", "t0ken-value", "pw-value", "plex-token-abcdef"):
        assert secret not in stored
    assert event.metadata["ok"] == "visible"
    assert redact({"token": None}) == {"token": None}


def test_a_broken_database_never_raises_into_the_job(settings, capsys):
    from app.db import bind_database

    from helpers import TEST_DATABASE_URL

    job = Job.create(type="noop")
    bind_database("postgresql://127.0.0.1:1/nowhere")
    try:
        create_job_logger(str(job.id), "Broken").error("still fine")  # must not raise
    finally:
        bind_database(TEST_DATABASE_URL)
    assert "could not store event" in capsys.readouterr().err
    assert _events(job.id) == []


def test_a_job_whose_events_cannot_be_stored_still_completes(settings, redis_conn, monkeypatch, capsys):
    """Every event write fails (the database refuses the insert the logger makes); the job still completes,
    and each lost event is printed to stderr instead."""
    import peewee

    from app.jobs import logger as job_logger
    from app.jobs.queues import queue_names_for_group
    from app.jobs.service import add_job

    from helpers import drain

    def refuse(*args, **kwargs):
        raise peewee.OperationalError("server closed the connection unexpectedly")

    job_id = add_job("noop", {})
    monkeypatch.setattr(job_logger, "_insert_event", refuse)
    drain(queue_names_for_group("maintenance"))
    assert Job.get_by_id(job_id).status == "completed"
    lost = [line for line in capsys.readouterr().err.splitlines() if f"could not store event for job {job_id}" in line]
    assert len(lost) == 2 and "[info] [Noop] Started" in lost[0]  # noop logs Started and Finished
    assert _events(job_id) == []

"""Process-wide logging: one line per record, `key=value` (default) or JSON (LOG_FORMAT=json).

Every process of the Procfile calls `configure_logging` at start (the web app, gunicorn through
app/gunicorn_conf.py, the scheduler, each worker). A line reads::

    ts=2026-01-02T03:04:05.678Z level=info logger=workers.job msg="noop completed" job=… type=noop …

Extra fields passed with `extra={...}` become keys of their own. A record is always one line:
newlines in a message or a traceback are escaped, so `wc -l` counts records and a JSON reader sees
whole objects.

Redacted: every record passes app/redaction/ first (RedactSecrets), third-party debug lines included.

Quiet at info: RQ repeats maintenance chatter for every queue of every worker every few seconds and
writes three lines per job. Those messages (table QUIETED below) are re-levelled to debug here; the
workers write one line of their own per finished job instead (workers/worker.py).
"""
from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("keyvalue", "json")
_MARK = "_rmab_handler"  # marks the handler configure_logging installs, so a second call replaces it

# Chatter re-levelled from info (or, for the traceback, error) to debug: (logger name prefix, how the
# record's unformatted message template is matched: "=" the whole template or "^" its start, template).
QUIETED: tuple[tuple[str, str, str], ...] = (
    # every maintenance interval, for every queue of every worker
    ("rq.worker", "^", "Worker %s: cleaning registries for queue"),
    # start and stop of each worker process (the pool logs its own line per worker)
    ("rq.worker", "^", "Worker %s: started with PID"),
    ("rq.worker", "^", "*** Listening on"),
    ("rq.worker", "^", "Worker %s: subscribing to channel"),
    ("rq.worker", "^", "Worker %s: unsubscribing from channel"),
    ("rq.worker", "^", "Worker %s [PID %d]: warm shut down requested"),
    ("rq.worker", "^", "Worker %s: stopping on request"),
    ("rq.worker", "^", "Worker %s: done, quitting"),
    # per job: dequeued, "Job OK", result kept, completed (the worker writes one end line instead)
    ("rq.worker", "=", "Worker %s: %s: %s (%s)"),
    ("rq.worker", "=", "Worker %s: %s: %s"),
    ("rq.worker", "^", "Successfully completed "),
    ("rq.worker", "^", "Worker %s: job %s result "),
    ("rq.worker", "^", "Worker %s: job %s scheduled to repeat"),
    # the traceback of a failed run: stored with the job; the job's failure line names the reason
    ("rq.worker", "^", "Worker %s: job %s: exception raised while executing"),
    # retries and download polls going back to the scheduled registry
    ("rq.job", "^", "Job %s: scheduled for retry at"),
    ("rq.job", "^", "Job %s: enqueued for retry"),
    # the scheduler process taking or releasing the lock of each queue
    ("rq.scheduler", "^", "Acquired scheduler lock for"),
    ("rq.scheduler", "^", "Scheduler stopping, releasing locks for"),
    ("rq_scheduler", "^", "Registering birth"),
    ("rq_scheduler", "^", "Registering death"),
)


def quieted(logger_name: str, template: Any) -> bool:
    """True when a record of `logger_name` with message template `template` is chatter (see QUIETED)."""
    if not isinstance(template, str):
        return False
    return any(logger_name.startswith(prefix) and (template == quiet if how == "=" else template.startswith(quiet))
               for prefix, how, quiet in QUIETED)


class QuietChatter(logging.Filter):
    """Re-levels chatter (see `quieted`) from info or error to debug; drops it below `threshold`."""

    def __init__(self, threshold: int):
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or record.levelno >= logging.CRITICAL:
            return True
        if not quieted(record.name, record.msg):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.threshold <= logging.DEBUG


class RedactSecrets(logging.Filter):
    """Redacts every record (app/redaction/) before it is written: its message with its arguments, its
    traceback and its text extras. Third-party debug lines carry what they were given: urllib3 logs each
    request's path and query (a tracker link's passkey), RQ a job's arguments (a download payload)."""

    def __init__(self, known_secrets: tuple[str, ...] | None = None):
        super().__init__()
        self._known_secrets = known_secrets

    @property
    def known_secrets(self) -> tuple[str, ...]:
        """The given secrets, or (None given) those of the settings in force: an admin may store a new one in
        the database while the process runs (app/settings_store.py)."""
        return _configured_secrets() if self._known_secrets is None else self._known_secrets

    def filter(self, record: logging.LogRecord) -> bool:
        from app.redaction import redact_text

        known = self.known_secrets
        message = record.getMessage()
        redacted = redact_text(message, known)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, known)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and isinstance(value, str):
                setattr(record, key, redact_text(value, known))
        return True


def _configured_secrets() -> tuple[str, ...]:
    try:
        from app.config import get_settings

        return get_settings().secret_values()
    except Exception:  # bad settings are reported by whoever loads them; the patterns still apply
        return ()


# Attributes every LogRecord has: whatever else a record carries came from `extra=` and is a field.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
_LEVEL_NAMES = {"WARNING": "warn", "CRITICAL": "critical"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields of one line, in order: ts, level, logger, msg, then extras, then exc."""
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "level": _LEVEL_NAMES.get(record.levelname, record.levelname.lower()),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_") and key not in fields:
            fields[key] = value
    if record.exc_info:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        fields["exc"] = record.exc_text
    if record.stack_info:
        fields["stack"] = record.stack_info
    return fields


_BARE_VALUE = re.compile(r"^[^\s\"=\\]+$")


def _keyvalue_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str) if isinstance(value, (dict, list)) \
        else str(value)
    if _BARE_VALUE.match(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def format_keyvalue(fields: dict[str, Any]) -> str:
    """`key=value …` on one line; values with spaces, quotes, `=` or newlines are quoted and escaped."""
    return " ".join(f"{key}={_keyvalue_value(value)}" for key, value in fields.items() if value is not None)


def format_json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, default=str, ensure_ascii=False)


class StructuredFormatter(logging.Formatter):
    """A record as one `key=value` line (style "keyvalue") or one JSON object (style "json")."""

    def __init__(self, style: str = "keyvalue"):
        super().__init__()
        if style not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}; got {style!r}")
        self.render = format_json if style == "json" else format_keyvalue

    def format(self, record: logging.LogRecord) -> str:
        return self.render(record_fields(record))


def _configured_format() -> str:
    try:
        from app.config import get_settings

        return get_settings().log_format
    except Exception:  # bad settings are reported by whoever loads them; logging must still work
        return "keyvalue"


def configure_logging(level: str = "info", fmt: str | None = None) -> None:
    """Root logger at `level`, one stderr handler in `fmt` (default: the LOG_FORMAT setting).

    Safe to call again (create_app, gunicorn's logger and the pools all do): the handler it installed
    before is replaced; handlers others installed (pytest's) are left alone."""
    threshold = logging.getLevelName(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(fmt or _configured_format()))
    handler.addFilter(QuietChatter(threshold))
    handler.addFilter(RedactSecrets())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    logging.captureWarnings(True)  # Python warnings become records: same format, same line discipline

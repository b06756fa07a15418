"""Integration health: is Prowlarr, the download client, Plex reachable, with which version, how fast.

- One check per integration (`check(name, settings)`): its probe (app/integrations/probes.py) asks the
  service through the thin clients with a short timeout
  (CHECK_TIMEOUT_SECONDS). An integration whose settings are unset is `configured: false, ok: null`
  and costs no network call. Errors are the clients' classified messages, redacted: never a key,
  token or password.
- A check that passes may still carry a warning, with its one-line fix: a setting that makes the service
  work badly (Plex's library folders that the workers' MEDIA_DIR, mapped by PLEX_PATH_MAPPINGS, does not
  lie in; the download client's save path, mapped by REMOTE_PATH_MAPPINGS, not a folder here) or indexers
  Prowlarr reports failing. The rules are app/pipeline/health_rules.py's; a follow-up question the service
  cannot answer is a warning, never an outage. The System page and the banner show them beside the failures.
- Results live in Redis only (ephemeral state): one hash, RESULTS_KEY, one JSON field per integration,
  whose TTL every write renews. No result (the scheduler is not running), or one older than
  STALE_SECONDS, means "not checked yet" (no banner).
- The scheduler checks every CHECK_INTERVAL_SECONDS (`run_periodic_checks`); the System page's Test button
  and `POST /api/admin/integrations/<name>/test` check one now. A check refused for its credentials
  (HTTP 401/403) is repeated by the scheduler only every REFUSED_RECHECK_SECONDS: qBittorrent bans an
  address after a few failed logins, and a ban would outlive the fix. Test always checks.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from app.integrations.errors import ServiceError
from app.integrations.probes import MAX_ERROR_CHARS as MAX_ERROR_CHARS  # re-exported: the limit of error_text
from app.integrations.probes import PROBES, Answer, bounded, error_text, label

NAMES = ("prowlarr", "download_client", "plex")
CHECK_TIMEOUT_SECONDS = 5.0
CHECK_INTERVAL_SECONDS = 60
RESULTS_KEY = "rmab:integrations:health"
RESULTS_TTL_SECONDS = 300      # renewed by every scheduler run: no scheduler, no results after 5 min
REFUSED_RECHECK_SECONDS = 600
STALE_SECONDS = REFUSED_RECHECK_SECONDS + RESULTS_TTL_SECONDS  # a result kept alive by others' writes
MAX_WARNING_CHARS = 600  # a warning names the setting and an example value: longer than an error
MAX_VERSION_CHARS = 100  # a version string comes from the service: bounded like everything from outside


@dataclass(frozen=True)
class CheckResult:
    name: str
    label: str
    configured: bool
    ok: bool | None
    version: str | None = None
    latency_ms: int | None = None
    error: str | None = None
    checked_at: float = 0.0     # epoch seconds
    refused: bool = False       # the service refused our credentials (401/403)
    warning: str | None = None  # it answers, but a setting makes it work badly (shown in the banner)
    fix: str | None = None      # one line: what mends the warning or the error

    def to_dict(self) -> dict[str, Any]:
        """The API shape (camelCase, checkedAt as ISO 8601 UTC)."""
        checked = None
        if self.checked_at:
            checked = datetime.fromtimestamp(self.checked_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"name": self.name, "label": self.label, "configured": self.configured, "ok": self.ok,
                "version": self.version, "latencyMs": self.latency_ms, "error": self.error, "warning": self.warning,
                "fix": self.fix, "checkedAt": checked}

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, raw: str | bytes) -> CheckResult | None:
        try:
            data = json.loads(raw)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            return None


def is_configured(name: str, settings) -> bool:
    """What the pipeline needs to call the service at all (Plex's library id is checked when set)."""
    if name == "prowlarr":
        return bool(settings.prowlarr_url and settings.prowlarr_api_key)
    if name == "download_client":
        return bool(settings.download_client_url)
    if name == "plex":
        return bool(settings.plex_url and settings.plex_token)
    raise KeyError(name)


def check(name: str, settings, timeout: float | None = None, clock: Callable[[], float] = time.time) -> CheckResult:
    """Check one integration now. Never raises for the service's failures: they are the result."""
    shown = label(name, settings)
    if not is_configured(name, settings):
        return CheckResult(name, shown, configured=False, ok=None, checked_at=clock())
    started = time.monotonic()
    try:
        answer = PROBES[name](settings, CHECK_TIMEOUT_SECONDS if timeout is None else timeout)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none escapes into a page
        refused = isinstance(exc, ServiceError) and exc.status in (401, 403)
        return CheckResult(name, shown, configured=True, ok=False, latency_ms=_ms(started),
                           error=error_text(exc, settings.secret_values()), checked_at=clock(), refused=refused)
    if isinstance(answer, str):
        answer = Answer(answer)
    version = answer.version.strip()[:MAX_VERSION_CHARS]
    warning = fix = None
    if answer.warning:
        from app.jobs.redact import redact_text

        warning = bounded(redact_text(answer.warning, settings.secret_values()), MAX_WARNING_CHARS)
        fix = bounded(redact_text(answer.fix, settings.secret_values()), MAX_WARNING_CHARS) if answer.fix else None
    return CheckResult(name, shown, configured=True, ok=True, version=version or None, latency_ms=_ms(started),
                       checked_at=clock(), warning=warning, fix=fix)


def _ms(started: float) -> int:
    return max(int(round((time.monotonic() - started) * 1000)), 0)


# --- storage ------------------------------------------------------------------------------------------

def store(connection, results: Iterable[CheckResult]) -> None:
    mapping = {r.name: r.dumps() for r in results}
    pipe = connection.pipeline()
    if mapping:
        pipe.hset(RESULTS_KEY, mapping=mapping)
    pipe.expire(RESULTS_KEY, RESULTS_TTL_SECONDS)
    pipe.execute()


def load(connection, now: float | None = None) -> dict[str, CheckResult]:
    """The fresh stored results by name (one HGETALL); stale or unreadable ones are left out."""
    now = time.time() if now is None else now
    results = {}
    for field, raw in (connection.hgetall(RESULTS_KEY) or {}).items():
        result = CheckResult.loads(raw)
        name = field.decode() if isinstance(field, bytes) else field
        if result is not None and result.name == name and now - result.checked_at <= STALE_SECONDS:
            results[name] = result
    return results


def report(connection, settings, now: float | None = None) -> list[dict]:
    """Every integration in NAMES order for the API and the System page: the stored result, or
    "not checked yet" (`ok: null`, `checkedAt: null`) for a configured one without a fresh result."""
    stored = load(connection, now)
    rows = []
    for name in NAMES:
        result = stored.get(name)
        configured = is_configured(name, settings)
        if result is None or result.configured != configured:  # settings changed since: not checked yet
            result = CheckResult(name, label(name, settings), configured=configured, ok=None)
        rows.append(result.to_dict())
    return rows


def failing(rows: list[dict]) -> list[dict]:
    """The rows a banner names: configured integrations whose last check failed."""
    return [row for row in rows if row["configured"] and row["ok"] is False]


def warned(rows: list[dict]) -> list[dict]:
    """The rows a banner warns about: configured integrations that answered but carry a warning."""
    return [row for row in rows if row["configured"] and row["ok"] is True and row.get("warning")]


def banner(rows: list[dict]) -> list[dict]:
    """Every row the banner shows: the failing ones first, then the warnings."""
    return failing(rows) + warned(rows)


def check_and_store(name: str, settings, connection) -> CheckResult:
    result = check(name, settings)
    store(connection, [result])
    return result


# --- the scheduler's duty -----------------------------------------------------------------------------

def periodic_check_due(previous: CheckResult | None, now: float) -> bool:
    """Whether the scheduler checks an integration again: always, except soon after a credentials refusal."""
    if previous is None or not previous.refused:
        return True
    return now - previous.checked_at >= REFUSED_RECHECK_SECONDS


def run_periodic_checks(settings, connection, checker: Callable[[str, Any], CheckResult] = check,
                        now: float | None = None) -> list[CheckResult]:
    """The scheduler's duty, every CHECK_INTERVAL_SECONDS. The previous results are read from Redis, so a
    Test that succeeded ends a refusal's back-off. Each integration has its own failure boundary (a
    crash in one check still stores the others); the key's TTL is renewed even when all were skipped."""
    now = time.time() if now is None else now
    stored = load(connection, now)
    results = []
    for name in NAMES:
        if not periodic_check_due(stored.get(name), now):
            continue
        try:
            result = checker(name, settings)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            result = CheckResult(name, label(name, settings), configured=True, ok=False,
                                 error=error_text(exc, settings.secret_values()), checked_at=time.time())
        results.append(result)
    store(connection, results)
    return results

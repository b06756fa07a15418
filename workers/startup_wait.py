"""The supervisor's start-up wait: Redis and the database are tried every STARTUP_RETRY_SECONDS for up to
WORKER_STARTUP_WAIT_SECONDS, so a stack started before its database does not die; the checks open
connections of their own and close them (nothing a forked worker could inherit)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

# The supervisor's log: these lines are its start-up.
log = logging.getLogger("workers.supervisor")

STARTUP_RETRY_SECONDS = 2.0   # start-up check: one try every 2 s …
STARTUP_LOG_SECONDS = 10.0    # … and one log line every 10 s while it fails


@dataclass(frozen=True)
class WaitStep:
    """What the start-up check does after a failed try: give up, or sleep and say whether to log."""

    give_up: bool
    log_now: bool


def startup_wait_step(elapsed: float, window: float, last_logged: float | None) -> WaitStep:
    """After a failed try `elapsed` seconds into the start-up window: stop once the window is used up;
    otherwise log at the first failure and then every STARTUP_LOG_SECONDS (`last_logged`: when the
    previous line was written, None before the first)."""
    if elapsed >= window:
        return WaitStep(give_up=True, log_now=False)
    log_now = last_logged is None or elapsed - last_logged >= STARTUP_LOG_SECONDS
    return WaitStep(give_up=False, log_now=log_now)


# --- start-up check -----------------------------------------------------------------------------------

def endpoint(url: str) -> str:
    """`url` without credentials, for log lines (the URL settings are secrets)."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.scheme == "unix":
        return f"unix:{parsed.path}"
    host = parsed.hostname or "localhost"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{host}{port}{parsed.path or ''}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_redis(url: str) -> str | None:
    """None when Redis answers PING, else why not. The connection is closed again (nothing to inherit)."""
    from redis import Redis

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
        return None
    except Exception as exc:  # any failure to answer is "not reachable yet"
        return f"Redis at {endpoint(url)} is not reachable: {_first_line(exc)}"
    finally:
        client.connection_pool.disconnect()


def check_database(url: str) -> str | None:
    """None when PostgreSQL accepts a connection (SQLite: always), else why not. Closed again."""
    if not url.startswith(("postgresql", "postgres")):
        return None
    from app.db import make_database

    database = make_database(url)
    try:
        database.connect()
        return None
    except Exception as exc:
        return f"PostgreSQL at {endpoint(url)} is not reachable: {_first_line(exc)}"
    finally:
        if not database.is_closed():
            database.close()


def wait_for_services(checks: list[Callable[[], str | None]], window: float,
                      stopping: Callable[[], bool] = lambda: False,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Try every check until all pass; None when they did, else the last problem once `window` is used up.

    Logs the first failure, then one line every STARTUP_LOG_SECONDS. Returns None at once when
    `stopping()` (a stop was requested while waiting: the caller exits without starting anything).
    """
    started = clock()
    last_logged: float | None = None
    while True:
        problems = [problem for problem in (check() for check in checks) if problem]
        if not problems:
            if last_logged is not None:
                log.warning("services reachable after %.0f s; starting the workers", clock() - started)
            return None
        if stopping():
            return None
        elapsed = clock() - started
        step = startup_wait_step(elapsed, window, last_logged)
        if step.give_up:
            return "; ".join(problems)
        if step.log_now:
            log.warning("waiting for services (%.0f s of %.0f s): %s; retrying every %.0f s",
                        elapsed, window, "; ".join(problems), STARTUP_RETRY_SECONDS)
            last_logged = elapsed
        sleep(min(STARTUP_RETRY_SECONDS, max(window - elapsed, 0.01)))

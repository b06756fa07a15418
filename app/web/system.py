"""The System page and the integrations API: Prowlarr, the download client and Plex (last check, Test),
plus Redis, PostgreSQL, the scheduler, workers and schedules (what /healthz knows). Also the health
banner every logged-in page shows while a configured integration's last check failed or warned."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, url_for
from flask_login import current_user

from app.auth.guards import api_admin_required, page_admin_required
from app.integrations import health as integrations
from app.jobs.queues import get_redis
from app.reports import system_health
from app.reports.workers import live_workers_by_group

bp = Blueprint("system", __name__)
log = logging.getLogger(__name__)


def _settings():
    return current_app.config["SETTINGS"]


def _connection():
    return get_redis(_settings().redis_url)


def _integration_rows() -> list[dict] | None:
    """The stored results, or None when Redis cannot be read."""
    try:
        return integrations.report(_connection(), _settings())
    except Exception as exc:  # noqa: BLE001 - a page must render without Redis
        log.debug("integration results unreadable: %s", type(exc).__name__)
        return None


@bp.app_context_processor
def _health_banner() -> dict:
    """`integration_problems()` for base.html: called only where the banner is drawn (a logged-in page),
    so partials and the login page cost no Redis call; one HGETALL when it is."""
    def integration_problems() -> list[dict]:
        if not current_user.is_authenticated:
            return []
        return integrations.banner(_integration_rows() or [])

    def system_problems() -> list[dict]:
        if not current_user.is_authenticated:
            return []
        try:
            return system_health.problems(system_health.load(_connection()))
        except Exception as exc:  # noqa: BLE001 - a page must render without Redis
            log.debug("system checks unreadable: %s", type(exc).__name__)
            return []

    return {"integration_problems": integration_problems, "system_problems": system_problems}


# --- API ----------------------------------------------------------------------------------------------

@bp.get("/api/admin/integrations")
@api_admin_required
def api_integrations():
    """`[{name, label, configured, ok, version, latencyMs, error, warning, checkedAt}]`; `ok: null` with
    `checkedAt: null` is "not checked yet" (a configured integration) or "not configured"."""
    rows = _integration_rows()
    if rows is None:
        return jsonify(success=False, error="Redis is not reachable: no integration results"), 503
    return jsonify(rows)


@bp.post("/api/admin/integrations/<name>/test")
@api_admin_required
def api_integration_test(name: str):
    if name not in integrations.NAMES:
        return jsonify(success=False, error=f"no integration {name!r}; one of {', '.join(integrations.NAMES)}"), 404
    result = integrations.check(name, _settings())
    try:
        integrations.store(_connection(), [result])
    except Exception as exc:  # noqa: BLE001 - the check itself still answers
        log.warning("integration result not stored: %s", type(exc).__name__)
    return jsonify(success=True, integration=result.to_dict())


# --- page -----------------------------------------------------------------------------------------------

@bp.get("/admin/system")
@page_admin_required
def system_page():
    from app.web.health import health_report

    report, _code = health_report()
    schedules: list[dict] = []
    if report.get("scheduler") is not None:  # Redis and PostgreSQL answered
        from app.models import ScheduledJob
        from app.schedules.service import schedule_report

        live = dict(live_workers_by_group(_connection()))
        rows = list(ScheduledJob.select().order_by(ScheduledJob.name))
        schedules = schedule_report(rows, live, report["scheduler"] == "ok")
    return render_template("admin/system.html", integrations=_integration_rows(), report=report,
                           schedules=schedules, check_interval=integrations.CHECK_INTERVAL_SECONDS,
                           checks=_system_checks())


def _system_checks() -> list[dict] | None:
    """The system checks run now (and stored for the banner); None when Redis or the database cannot be read."""
    try:
        return system_health.check_and_store(_settings(), _connection())
    except Exception as exc:  # noqa: BLE001 - a page must render without Redis
        log.warning("system checks failed: %s", type(exc).__name__)
        return None


@bp.get("/api/admin/health")
@api_admin_required
def api_health_checks():
    """Every health check with its fix: `{integrations: [...], checks: [{name, label, level, message, fix}]}`
    (the system checks run now)."""
    checks = _system_checks()
    rows = _integration_rows()
    if checks is None or rows is None:
        return jsonify(success=False, error="Redis is not reachable: the checks cannot run"), 503
    return jsonify(success=True, integrations=rows, checks=checks)


@bp.post("/admin/system/integrations/<name>/test")
@page_admin_required
def integration_test(name: str):
    """Test: check one integration now (synchronously, CHECK_TIMEOUT_SECONDS per call), store it, back to
    the page, whose table and banner show the new result."""
    if name not in integrations.NAMES:
        abort(404)
    result = integrations.check(name, _settings())
    try:
        integrations.store(_connection(), [result])
    except Exception as exc:  # noqa: BLE001
        flash(f"The result could not be stored (Redis: {type(exc).__name__}).")
    if not result.configured:
        flash(f"{result.label} is not configured.")
    elif result.ok:
        version = f" {result.version}" if result.version else ""
        warning = f" Warning: {result.warning}" if result.warning else ""
        flash(f"{result.label}{version} answered in {result.latency_ms} ms.{warning}")
    else:
        flash(f"{result.label} failed the test: {result.error}")
    return redirect(url_for("system.system_page"))

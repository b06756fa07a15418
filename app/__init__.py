"""The Flask app (admin pages, JSON API, health check) and the `flask --app app` CLI."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Settings, get_settings, set_settings

# Sent with every reply (pages, JSON, errors, static files). The pages have no inline script, style or
# on*= handler (scripts and styles are files under app/static/), so the policy can forbid them all.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
    "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def create_app(settings: Settings | None = None) -> Flask:
    from app import auth
    from app.cli import register_cli
    from app.db import bind_database, database
    from app.logging_setup import configure_logging
    from app.web import (
        activity,
        api,
        blocklist,
        dashboard,
        errors,
        health,
        login,
        metrics,
        notifications,
        request_pages,
        requests_api,
        setup,
        system,
    )
    from app.web import settings as settings_pages

    if settings is not None:
        set_settings(settings)
    settings = get_settings()
    configure_logging(settings.log_level)
    root = Path(__file__).resolve().parent.parent
    flask_app = Flask(__name__, template_folder=str(root / "templates"),
                      instance_path=str(settings.instance_dir.resolve()))
    flask_app.config.update(
        SETTINGS=settings,
        SECRET_KEY=auth.load_or_create_secret_key(settings),
        ADMIN_PASSWORD_HASH=auth.load_or_create_password_hash(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,  # on when the site is served over HTTPS
        # A session ends after this long without a request (the live pages' refresh keeps it alive).
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_lifetime_hours),
        # CSRF tokens live as long as the session that holds them (Flask-WTF's default 1 h broke forms on
        # a page left open).
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked below, except for bearer-token API calls
        MAX_CONTENT_LENGTH=settings.max_content_length,  # larger bodies: 413 before they are read
        TRUSTED_HOSTS=settings.trusted_hosts,  # other Host headers: 400 (DNS rebinding), ALLOWED_HOSTS
    )
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        flask_app.wsgi_app = ProxyFix(flask_app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore
    bind_database(settings.effective_database_url)
    auth.csrf.init_app(flask_app)
    auth.login_manager.init_app(flask_app)

    flask_app.before_request(errors.refuse_at_the_edge)  # bad Host, URL too long, body over the limit

    @flask_app.before_request
    def _csrf_unless_bearer() -> None:
        if auth.needs_csrf_token():  # an unsafe method without a valid bearer token
            errors.refuse_anonymous_api_write()  # 401 JSON for API callers without credentials
            auth.csrf.protect()

    @flask_app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.endpoint != "static":  # pages and answers carry admin data and CSRF tokens: never cached
            response.headers["Cache-Control"] = "no-store"
        return response

    @flask_app.teardown_appcontext
    def _close_db(exc: BaseException | None) -> None:
        db = database.obj
        if db is not None and not db.is_closed() and not db.in_transaction():
            db.close()

    errors.register(flask_app)  # JSON errors under /api, bounded request JSON
    flask_app.register_blueprint(login.bp)
    flask_app.register_blueprint(api.bp)
    flask_app.register_blueprint(health.bp)
    flask_app.register_blueprint(requests_api.bp)
    flask_app.register_blueprint(dashboard.bp)
    flask_app.register_blueprint(request_pages.bp)
    flask_app.register_blueprint(metrics.bp)
    flask_app.register_blueprint(system.bp)
    flask_app.register_blueprint(blocklist.bp)
    flask_app.register_blueprint(activity.bp)
    flask_app.register_blueprint(settings_pages.bp)
    flask_app.register_blueprint(setup.bp)
    flask_app.register_blueprint(notifications.bp)
    register_cli(flask_app)
    return flask_app

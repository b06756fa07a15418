"""The Flask app (admin pages, JSON API, health check) and the `flask --app app` CLI."""
from __future__ import annotations

from pathlib import Path

from flask import Flask, request
from flask_wtf.csrf import CSRFProtect

from app.config import Settings, get_settings, set_settings

csrf = CSRFProtect()
_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def create_app(settings: Settings | None = None) -> Flask:
    from app import auth
    from app.cli import register_cli
    from app.db import bind_database, database
    from app.logging_setup import configure_logging
    from app.web import admin, api, dashboard, health, metrics, requests_api

    if settings is not None:
        set_settings(settings)
    settings = get_settings()
    configure_logging(settings.log_level)
    root = Path(__file__).resolve().parent.parent
    flask_app = Flask(__name__, template_folder=str(root / "templates"), instance_path=str(settings.instance_dir.resolve()))
    flask_app.config.update(
        SETTINGS=settings,
        SECRET_KEY=auth.load_or_create_secret_key(settings),
        ADMIN_PASSWORD_HASH=auth.load_or_create_password_hash(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_CHECK_DEFAULT=False,  # checked below, except for bearer-token API calls
    )
    bind_database(settings.effective_database_url)
    csrf.init_app(flask_app)
    auth.login_manager.init_app(flask_app)

    @flask_app.before_request
    def _csrf_unless_bearer() -> None:
        if request.method in _UNSAFE_METHODS and not auth.bearer_token_valid():
            csrf.protect()

    @flask_app.teardown_appcontext
    def _close_db(exc: BaseException | None) -> None:
        db = database.obj
        if db is not None and not db.is_closed() and not db.in_transaction():
            db.close()

    flask_app.register_blueprint(admin.bp)
    flask_app.register_blueprint(api.bp)
    flask_app.register_blueprint(health.bp)
    flask_app.register_blueprint(requests_api.bp)
    flask_app.register_blueprint(dashboard.bp)
    flask_app.register_blueprint(metrics.bp)
    register_cli(flask_app)
    return flask_app

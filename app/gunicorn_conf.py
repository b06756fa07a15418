"""gunicorn settings for the Procfile's web line:

    gunicorn -c python:app.gunicorn_conf 'app:create_app()'

Everything comes from the app's settings (environment and `.env`, app/config/), so the web server
is configured like the rest: HOST and PORT (default 127.0.0.1:5000), WEB_WORKERS processes (1) of
WEB_THREADS threads (4) each, and WEB_GRACEFUL_TIMEOUT (10 s): on SIGTERM gunicorn stops accepting,
lets requests in flight finish for up to that long, and exits 0. The worker processes serve HTTP with
waitress (app/waitress_worker.py: slow or idle clients cannot take the threads; WEB_CLIENT_TIMEOUT,
WEB_MAX_CONNECTIONS). Its own log lines go through the app's formatter (key=value or JSON, LOG_LEVEL), and
no access log is written (the dashboard's live parts poll every few seconds; a reverse proxy in front keeps
one if wanted).
"""
from __future__ import annotations

from gunicorn import glogging

from app.config import get_settings
from app.logging_setup import configure_logging


def bind_address(host: str, port: int) -> str:
    """gunicorn's HOST:PORT, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class StructuredLogger(glogging.Logger):
    """gunicorn's error and access loggers, written by the app's root handler (one format per process)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
        configure_logging(cfg.loglevel)


def when_ready(server) -> None:
    """One start-up line with what is really running (gunicorn's parsed configuration)."""
    cfg = server.cfg
    engine = getattr(cfg.worker_class, "engine", cfg.worker_class_str)
    server.log.info("web server ready on %s: %d worker process(es) × %d threads (%s), graceful stop %d s",
                    ", ".join(cfg.bind), cfg.workers, cfg.threads, engine, cfg.graceful_timeout,
                    extra={"bind": ",".join(cfg.bind), "workers": cfg.workers, "threads": cfg.threads,
                           "worker_class": engine, "graceful_timeout": cfg.graceful_timeout})


_settings = get_settings()

wsgi_app = "app:create_app()"
# Explicit, so gunicorn never falls back to its own default of 0.0.0.0:$PORT (honcho sets PORT).
bind = [bind_address(_settings.host, _settings.port)]
# gunicorn's master with waitress inside each worker: gthread let WEB_THREADS slow clients freeze the web
worker_class = "app.waitress_worker.WaitressWorker"
workers = _settings.web_workers
threads = _settings.web_threads
graceful_timeout = _settings.web_graceful_timeout
loglevel = _settings.log_level.lower()
logger_class = StructuredLogger
accesslog = None
proc_name = "readmeabook-web"
# The app alone decides what to believe of X-Forwarded-* (TRUSTED_PROXIES, werkzeug's ProxyFix).
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
# gunicorn >= 25 opens a control socket in the home directory by default; two servers (or a test next
# to a running one) would fight over it, and nothing here uses it.
control_socket_disable = True

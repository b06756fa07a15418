"""The web server's worker class: gunicorn keeps the processes, waitress reads the connections.

gunicorn's master stays what it was (WEB_WORKERS processes, a dead one restarted, SIGTERM → a graceful stop
of WEB_GRACEFUL_TIMEOUT, its log lines); inside each worker process waitress serves HTTP:

- every connection is read asynchronously by one loop; a request goes to one of WEB_THREADS threads only
  once it has arrived whole. gunicorn's gthread hands a connection to a thread as soon as its first byte
  arrives and that thread then waits for the rest with no deadline, so WEB_THREADS clients that each sent
  one byte froze every page, the API and /healthz (issue 18 item 2);
- a connection silent for WEB_CLIENT_TIMEOUT seconds (an idle keep-alive, a request trickling in) is
  closed; at most WEB_MAX_CONNECTIONS are open per process, further ones wait in the listen backlog;
- a body over MAX_CONTENT_LENGTH is refused (413) from its Content-Length, before it is read; under /api
  waitress's own refusals have the app's JSON shape (app/web/errors.py).

On SIGTERM the worker stops accepting, closes its idle connections, lets the requests it has started to
receive finish (up to WEB_GRACEFUL_TIMEOUT; the master kills it after that) and exits.
"""
from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

from gunicorn.workers.base import Worker
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge, RequestHeaderFieldsTooLarge

from app.config import get_settings
from app.web.errors import body_too_large_message, is_api_path

MAX_HEADER_BYTES = 64 * 1024  # request line and headers; a bigger head is 431 (waitress's default is 256 KiB)
DESCRIPTORS_BESIDES_CONNECTIONS = 128  # listeners, database and Redis connections, logs, waitress's trigger


def open_file_limits(wanted_connections: int, soft: int, hard: int) -> tuple[int, int]:
    """(soft RLIMIT_NOFILE to set, connections to allow) for `wanted_connections` open connections.

    Every connection is a descriptor: past the limit accept() fails with EMFILE on each pass of the loop, so
    the soft limit is raised towards the hard one when needed, and the connections are capped at what fits.
    `hard` is resource.RLIM_INFINITY (-1) when unlimited."""
    needed = wanted_connections + DESCRIPTORS_BESIDES_CONNECTIONS
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft == resource.RLIM_INFINITY:
        return soft, wanted_connections
    return soft, max(1, min(wanted_connections, soft - DESCRIPTORS_BESIDES_CONNECTIONS))


def is_idle(channel: HTTPChannel) -> bool:
    """Nothing of a request received, none being served, nothing left to send: safe to close at a stop."""
    return channel.request is None and not channel.requests and not channel.total_outbufs_len


class AppShapedErrorTask(ErrorTask):
    """waitress's own refusals (body over the limit, head too large, malformed request): under /api the
    app's `{"success": false, "error": "..."}`, elsewhere waitress's plain text."""

    def execute(self) -> None:
        error = self.request.error
        if not is_api_path(self._path()):
            super().execute()
            return
        if isinstance(error, RequestEntityTooLarge):
            message = body_too_large_message(self.channel.server.adj.max_request_body_size - 1)
        else:
            message = f"{error.reason}: {error.body}"
        body = json.dumps({"success": False, "error": message}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)

    def _path(self) -> str:
        """The request's path; for a head over the limit (which waitress leaves unparsed, as `/`), the target
        of its first line when that has arrived."""
        if isinstance(self.request.error, RequestHeaderFieldsTooLarge):
            # "METHOD /target HTTP/1.1", possibly cut short inside a long target
            first_line = self.request.header_plus.split(b"\r\n", 1)[0].split(b" ")
            return first_line[1].decode("latin-1").split("?", 1)[0] if len(first_line) >= 2 else ""
        return getattr(self.request, "path", "") or ""


class AppChannel(HTTPChannel):
    error_task_class = AppShapedErrorTask


class WaitressWorker(Worker):
    """A gunicorn worker whose HTTP is waitress's (see the module docstring)."""

    engine = "waitress"  # named in the web server's ready line

    def run(self) -> None:
        settings = get_settings()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        new_soft, max_connections = open_file_limits(settings.web_max_connections, soft, hard)
        if new_soft != soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        if max_connections < settings.web_max_connections:
            self.log.warning("WEB_MAX_CONNECTIONS=%d lowered to %d: the open-file limit is %d (raise it with "
                             "ulimit -n or LimitNOFILE=)", settings.web_max_connections, max_connections, new_soft)
        socket_map: dict[int, Any] = {}
        create_server(
            self.wsgi, map=socket_map, sockets=[listener.sock for listener in self.sockets],
            threads=self.cfg.threads, backlog=self.cfg.backlog,
            # waitress counts every entry of its socket map: the listeners and its wake-up pipe too
            connection_limit=max_connections + len(self.sockets) + 1,
            channel_timeout=settings.web_client_timeout, cleanup_interval=min(5, settings.web_client_timeout),
            max_request_header_size=MAX_HEADER_BYTES,
            # waitress refuses a body of max_request_body_size bytes or more; the app allows MAX_CONTENT_LENGTH
            max_request_body_size=settings.max_content_length + 1,
            # the app alone decides what to believe of X-Forwarded-* (TRUSTED_PROXIES, werkzeug's ProxyFix)
            clear_untrusted_proxy_headers=False,
            asyncore_use_poll=True,  # select() stops at descriptor 1024
            ident=None,  # no Server header
            log_socket_errors=False,  # a client that resets its connection is not the operator's problem
        )
        listeners = [item for item in socket_map.values() if isinstance(item, BaseWSGIServer)]
        for listener in listeners:
            listener.channel_class = AppChannel
        notified = 0.0
        while self.alive and self.ppid == os.getppid():
            if time.monotonic() - notified >= 1:  # a file-time syscall: once a second, not once a pass
                self.notify()
                notified = time.monotonic()
            wasyncore.loop(timeout=1.0, map=socket_map, use_poll=True, count=1)
        self._stop(listeners, socket_map)

    def _stop(self, listeners: list[BaseWSGIServer], socket_map: dict[int, Any]) -> None:
        """Stop accepting, close idle connections, serve what has started to arrive, then close everything."""
        for listener in listeners:
            listener.accepting = False
            listener.del_channel()
        for socket in self.sockets:
            socket.close()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() < deadline:
            self.notify()
            # one pass first: bytes already in the kernel's buffer make their connection busy, not idle
            wasyncore.loop(timeout=0.2, map=socket_map, use_poll=True, count=1)
            channels = [item for item in socket_map.values() if isinstance(item, HTTPChannel)]
            if not channels:
                break
            for channel in channels:
                if is_idle(channel):
                    channel.will_close = True  # as waitress's own idle sweep does: closed on the next pass
        listeners[0].task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(socket_map)

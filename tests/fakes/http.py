"""Shared plumbing of the fake HTTP services: a quiet handler with a `_send` helper, run on 127.0.0.1."""
from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def serve(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start `handler` on a free port of `host` (loopback unless a test needs another address) in a daemon
    thread."""
    server = ThreadingHTTPServer((host, 0), handler)
    # a short poll: shutdown() waits up to one interval, and every test stops its fakes
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


# What a Recorder answers: (status, body, content type, headers), from the request's path and headers.
Answer = tuple[int, bytes, str, dict]


class Recorder:
    """A loopback server on its own port that records every request ({method, path, headers, body}, header names
    lower case) and answers each with `answer(path, headers)`: an indexer, a collector a redirect points at,
    a redirecting proxy, a notification receiver."""

    def __init__(self, answer: Callable[[str, dict], Answer]):
        self.requests: list[dict] = []
        recorder = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = self.rfile.read(int(headers.get("content-length") or 0)).decode("utf-8", "replace")
                recorder.requests.append({"method": self.command, "path": self.path, "headers": headers,
                                          "body": body})
                status, body, content_type, extra = answer(self.path, headers)
                self._send(status, body, content_type, extra)

            do_GET = do_POST = do_PUT = do_DELETE = _any  # noqa: N815

        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

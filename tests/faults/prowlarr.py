"""The fake Prowlarr of tests/fakes with two additions for fault injection, wrapped around its handler:

- holds: the first N requests matching a rule (a search for a title, or a release download) wait
  until the test releases them, so a worker is reliably "mid-search" or "mid-download" when it is
  killed; `arrived` tells the test that the worker is now waiting on the reply;
- every status answered is recorded, so a scenario can check that Prowlarr never answered 401.

tests/fakes/prowlarr.py is left untouched: its request handler is subclassed after it starts.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

from fakes.prowlarr import FakeProwlarr


@dataclass(frozen=True)
class Reply:
    path: str
    release: str      # the `file` of a release download link (its title), else ""
    status: int
    at: float         # time.monotonic() when the reply was sent


@dataclass
class Hold:
    """Holds the first `count` requests for which `matches(path, query)` is true, for at most `limit` s."""

    matches: Callable[[str, dict], bool]
    count: int = 1
    limit: float = 120.0
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    held: int = 0

    def release(self) -> None:
        self.released.set()


def search_for(word: str) -> Callable[[str, dict], bool]:
    """A search whose query contains `word` (case-insensitive)."""
    return lambda path, query: path == "/api/v1/search" and word.lower() in (query.get("query") or [""])[0].lower()


def download_of(title: str) -> Callable[[str, dict], bool]:
    """A release download (proxy link) of the release titled `title`."""
    return lambda path, query: path.endswith("/download") and (query.get("file") or [""])[0] == title


class FaultyProwlarr(FakeProwlarr):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.holds: list[Hold] = []
        self.replies: list[Reply] = []   # every reply, in order
        self._lock = threading.Lock()

    def hold(self, matches: Callable[[str, dict], bool], count: int = 1, limit: float = 120.0) -> Hold:
        rule = Hold(matches, count, limit)
        with self._lock:
            self.holds.append(rule)
        return rule

    def release_all(self) -> None:
        for rule in self.holds:
            rule.release()

    def _claim(self, path: str, query: dict) -> Hold | None:
        with self._lock:
            for rule in self.holds:
                if rule.held < rule.count and not rule.released.is_set() and rule.matches(path, query):
                    rule.held += 1
                    return rule
        return None

    def start(self) -> FaultyProwlarr:
        super().start()
        fake, base = self, self.server.RequestHandlerClass

        class Handler(base):  # type: ignore[misc, valid-type]
            def do_GET(self) -> None:  # noqa: N802
                parsed = urlparse(self.path)
                rule = fake._claim(parsed.path, parse_qs(parsed.query))
                if rule is not None:
                    rule.arrived.set()
                    rule.released.wait(rule.limit)
                super().do_GET()

            def send_response(self, code: int, message: str | None = None) -> None:
                parsed = urlparse(self.path)
                release = (parse_qs(parsed.query).get("file") or [""])[0]
                fake.replies.append(Reply(parsed.path, release, code, time.monotonic()))
                super().send_response(code, message)

        self.server.RequestHandlerClass = Handler
        # a held reply to a worker killed meanwhile hits a closed socket: expected, not worth a traceback
        self.server.handle_error = lambda request, client_address: None
        return self

    def stop(self) -> None:
        self.release_all()
        super().stop()

    def unauthorized(self) -> list[str]:
        return [reply.path for reply in self.replies if reply.status == 401]

    def downloads_of(self, title: str) -> list[Reply]:
        return [reply for reply in self.replies if reply.path.endswith("/download") and reply.release == title]

"""A notification receiver: a loopback HTTP server taking Apprise's json:// POSTs, as a webhook endpoint would
(`{"version", "title", "message", "attachments", "type"}`), answering each with the next status of `answers`
(then 200), each after `delay` seconds."""
from __future__ import annotations

import json
import time

from fakes.http import Recorder

TOKEN = "Tok3nABCDEF1234567890"       # a webhook token in the path
PASSWORD = "S3cretPassw0rdXY"          # a password in the authority


class Receiver:
    def __init__(self, answers: tuple[int, ...] = (), delay: float = 0.0):
        self.answers = list(answers)
        self.delay = delay
        self.server = Recorder(self._answer)
        self.port = self.server.url.rsplit(":", 1)[1]

    def _answer(self, path: str, headers: dict) -> tuple[int, bytes, str, dict]:
        time.sleep(self.delay)
        return self.answers.pop(0) if self.answers else 200, b"ok", "text/plain", {}

    def url(self, path: str = "hook") -> str:
        """An Apprise URL for this receiver that carries a password and a token, as real ones do."""
        return f"json://user:{PASSWORD}@127.0.0.1:{self.port}/{path}/{TOKEN}"

    def messages(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.server.requests if r["method"] == "POST"]

    def stop(self) -> None:
        self.server.stop()

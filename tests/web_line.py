"""The Procfile's web line as a real process (gunicorn with waitress workers), for the tests that serve over HTTP."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests

from helpers import ROOT, wait_for


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and key.strip() == name:
            return command.strip()
    raise AssertionError(f"the Procfile has no {name!r} line")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebLine:
    """The Procfile's web command under `sh -c`, in its own session, output to a file."""

    def __init__(self, env: dict, tmp_path: Path, **extra: str):
        self.port = free_port()
        self.log_path = tmp_path / "web.log"
        bin_dir = str(Path(sys.executable).parent)  # the Procfile's `flask` and `gunicorn`
        full_env = {**os.environ, **env, "HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "info",
                    "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **extra}
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(["/bin/sh", "-c", procfile_command("web")], cwd=ROOT, env=full_env,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def wait_until_serving(self) -> None:
        def serving() -> bool:
            assert self.process.poll() is None, f"the web line exited early:\n{self.output()}"
            try:
                return requests.get(f"{self.url}/healthz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(serving, 90, interval=0.3, message="/healthz on the web line")

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self._log.close()

"""The real qbittorrent-nox and transmission-daemon on loopback (offline: no trackers, DHT, LSD or UPnP)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


class Daemon:
    kind = ""
    binary = ""

    def __init__(self, root: Path, download_dir: Path):
        self.root, self.download_dir = root, download_dir
        self.process: subprocess.Popen | None = None
        if shutil.which(self.binary) is None:
            raise RuntimeError(f"{self.binary} is not installed (bash .ci/run installs it)")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


class QBittorrent(Daemon):
    kind, binary = "qbittorrent", "qbittorrent-nox"
    username, password = "admin", "qbt-test-pass"

    def __init__(self, root: Path, download_dir: Path, address: str = "127.0.0.1"):
        super().__init__(root, download_dir)
        self.port, self.bt_port = free_port(), free_port()
        self.address = address   # where the WebUI listens (peers stay on loopback)
        self.url = f"http://{address}:{self.port}"

    def _config(self) -> None:
        salt = os.urandom(16)
        key = hashlib.pbkdf2_hmac("sha512", self.password.encode(), salt, 100_000, dklen=64)
        secret = f'"@ByteArray({base64.b64encode(salt).decode()}:{base64.b64encode(key).decode()})"'
        config = self.root / "qBittorrent" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "qBittorrent.conf").write_text(f"""[LegalNotice]
Accepted=true

[BitTorrent]
Session\\DefaultSavePath={self.download_dir}
Session\\Port={self.bt_port}
Session\\Interface=lo
Session\\InterfaceName=lo
Session\\InterfaceAddress=127.0.0.1
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\QueueingSystemEnabled=false
Session\\AddTorrentPaused=false
Session\\AddTorrentStopped=false
Session\\RefreshInterval=250

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\\UPnP=false
Connection\\ResolvePeerCountries=false
WebUI\\Address={self.address}
WebUI\\Port={self.port}
WebUI\\Username={self.username}
WebUI\\Password_PBKDF2={secret}
WebUI\\LocalHostAuth=true
WebUI\\MaxAuthenticationFailCount=1000
""")

    def start(self) -> QBittorrent:
        if not (self.root / "qBittorrent" / "config" / "qBittorrent.conf").exists():
            self._config()
        with open(self.root / "daemon.log", "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen([self.binary, f"--profile={self.root}"], stdout=log,
                                            stderr=subprocess.STDOUT)
        _wait(lambda: requests.get(f"{self.url}/api/v2/app/version", timeout=1).status_code in (200, 403), 20,
              "qbittorrent-nox")
        return self


class Transmission(Daemon):
    kind, binary = "transmission", "transmission-daemon"
    username, password = "tr", "tr-test-pass"

    def __init__(self, root: Path, download_dir: Path):
        super().__init__(root, download_dir)
        self.port, self.bt_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> Transmission:
        settings = self.root / "settings.json"
        if not settings.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps({
                "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1", "dht-enabled": False,
                "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False, "port-forwarding-enabled": False,
                "blocklist-enabled": False, "peer-port": self.bt_port, "peer-port-random-on-start": False,
                "download-dir": str(self.download_dir), "incomplete-dir-enabled": False,
                "rpc-bind-address": "127.0.0.1", "rpc-port": self.port, "rpc-authentication-required": True,
                "rpc-username": self.username, "rpc-password": self.password, "rpc-whitelist-enabled": True,
                "rpc-whitelist": "127.0.0.1,::1"}))
        with open(self.root / "daemon.log", "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen([self.binary, "-f", "-g", str(self.root), "--log-error"], stdout=log,
                                            stderr=subprocess.STDOUT)
        _wait(lambda: requests.post(f"{self.url}/transmission/rpc", timeout=1,
                                    auth=(self.username, self.password)).status_code == 409, 20, "transmission-daemon")
        return self

"""A second worker host for the fault suite: a network namespace with its own address, joined to this
machine by a veth pair, in which `python -m workers` runs for some groups beside the stack on the host.

    host (the stack)                                   namespace rmab-<id> ("host 2", its own hostname)
    <veth rh<id>>  10.213.N.1  PostgreSQL              <veth rn<id>>  10.213.N.6
                   10.213.N.2  Redis
                   10.213.N.3  qBittorrent WebUI, fake Prowlarr and Plex

Each service of the stack has its own address on the host end (a /29), so one of them can be made
unreachable from the namespace alone (a blackhole route inside it) while the host's own processes still
reach it; `cut()` takes the namespace's end of the link down (a pulled cable: packets are lost, no
connection is reset, so a cut-off run resumes where it was when the link comes back). Addresses exist only
on this pair, inside a 10.213.0.0/16 block no other interface of the machine uses; nothing is routed
anywhere else. The namespace shares the filesystem (the media disks are "mounted at the same paths").

`close()` always removes the namespace and its veth, killing whatever still runs inside it.
"""
from __future__ import annotations

import ipaddress
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path

BLOCK = ipaddress.ip_network("10.213.0.0/16")
HOSTNAME = "rmab-host2"


def _ip(*args: str, namespace: str | None = None) -> str:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def _free_subnet() -> ipaddress.IPv4Network:
    """A /29 of BLOCK that no interface of this machine has an address in (other runs use their own)."""
    used = set()
    for line in _ip("-o", "-4", "addr", "show").splitlines():
        address = ipaddress.ip_interface(line.split()[3]).ip
        if address in BLOCK:
            used.add(ipaddress.ip_network(f"{address}/24", strict=False))
    free = [subnet for subnet in BLOCK.subnets(new_prefix=24) if subnet not in used]
    if not free:
        raise RuntimeError(f"no free /24 left in {BLOCK}")
    return next(random.choice(free).subnets(new_prefix=29))  # at random: runs starting together differ


class SecondHost:
    """The namespace, its veth pair and addresses. Use `SecondHost.create()`; `close()` is idempotent."""

    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.namespace = f"rmab-{suffix}"
        self.host_link, self.link = f"rh{suffix}", f"rn{suffix}"   # 15 characters at most
        subnet = _free_subnet()
        hosts = list(subnet.hosts())
        self.pg_address, self.redis_address, self.services_address = (str(a) for a in hosts[:3])
        self.address = str(hosts[-1])   # the namespace's own address
        self.prefix = subnet.prefixlen
        self.blocked: set[str] = set()
        self._closed = False

    @classmethod
    def create(cls) -> SecondHost:
        host = cls()
        try:
            host._set_up()
        except BaseException:
            host.close()
            raise
        return host

    def _set_up(self) -> None:
        _ip("netns", "add", self.namespace)
        _ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.link)
        _ip("link", "set", self.link, "netns", self.namespace)
        for address in (self.pg_address, self.redis_address, self.services_address):
            _ip("addr", "add", f"{address}/{self.prefix}", "dev", self.host_link)
        _ip("link", "set", self.host_link, "up")
        _ip("addr", "add", f"{self.address}/{self.prefix}", "dev", self.link, namespace=self.namespace)
        _ip("link", "set", self.link, "up", namespace=self.namespace)
        _ip("link", "set", "lo", "up", namespace=self.namespace)

    # ---- processes -------------------------------------------------------------------------------------

    def popen(self, command: list[str], **kwargs) -> subprocess.Popen:
        """Run `command` inside the namespace, with its own hostname (a UTS namespace), so worker names
        (<group>-<hostname>-<pid>-<n>) tell the hosts apart. `ip netns exec` and `unshare` exec in place: the
        Popen's pid is the command itself."""
        script = f'hostname {HOSTNAME} && exec "$@"'
        return subprocess.Popen(["ip", "netns", "exec", self.namespace, "unshare", "--uts", "sh", "-c", script,
                                 "sh", *command], **kwargs)

    def pids(self) -> list[int]:
        done = subprocess.run(["ip", "netns", "pids", self.namespace], capture_output=True, text=True, timeout=10)
        return [int(pid) for pid in done.stdout.split()]

    def holds(self, pid: int) -> bool:
        """The process runs inside this namespace (its network namespace is the namespace's)."""
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{self.namespace}").st_ino
        except FileNotFoundError:
            return False

    # ---- faults ------------------------------------------------------------------------------------------

    def cut(self) -> None:
        """The namespace's end of the link goes down: nothing gets in or out, connections stay open."""
        _ip("link", "set", self.link, "down", namespace=self.namespace)

    def heal(self) -> None:
        _ip("link", "set", self.link, "up", namespace=self.namespace)

    def block(self, address: str) -> None:
        """Packets from the namespace to `address` are dropped there (one service unreachable from host 2
        only); connections to it stall and resume after `unblock`."""
        _ip("route", "add", "blackhole", f"{address}/32", namespace=self.namespace)
        self.blocked.add(address)

    def unblock(self, address: str) -> None:
        _ip("route", "del", "blackhole", f"{address}/32", namespace=self.namespace)
        self.blocked.discard(address)

    # ---- clean-up ----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill what still runs inside, delete the namespace (its veth end goes with it) and the host's end."""
        if self._closed:
            return
        self._closed = True
        if Path(f"/run/netns/{self.namespace}").exists():
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=20)
        # normally gone with its peer; still there if the set-up failed before moving the peer
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, timeout=20)

    def leftovers(self) -> list[str]:
        """What of this host is still on the machine (empty after close())."""
        found = []
        if Path(f"/run/netns/{self.namespace}").exists():
            found.append(f"namespace {self.namespace}")
        if subprocess.run(["ip", "link", "show", self.host_link], capture_output=True, timeout=10).returncode == 0:
            found.append(f"link {self.host_link}")
        return found

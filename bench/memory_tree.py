"""The memory bench's process tree: every process under honcho, named after its Procfile line (and RQ worker),
with its PSS and RSS from /proc/<pid>/smaps_rollup, and the table bench/memory.py prints of them."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    pid: int
    ppid: int
    role: str
    category: str  # web, scheduler, workers (every worker line), honcho and shells
    pss_kb: int
    rss_kb: int

    @property
    def pss_mb(self) -> float:
        return self.pss_kb / 1024


def _ppid(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2:].split()[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _memory_kb(pid: int) -> tuple[int, int]:
    values = {"Pss": 0, "Rss": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values["Pss"], values["Rss"]


def tree(root_pid: int) -> list[tuple[int, int]]:
    """(pid, ppid) of root_pid and every descendant, parents before children."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _ppid(int(entry))
            if ppid is not None:
                parents[int(entry)] = ppid
    found, level = [(root_pid, parents.get(root_pid, 0))], [root_pid]
    while level:
        level = sorted(pid for pid, ppid in parents.items() if ppid in set(level))
        found += [(pid, parents[pid]) for pid in level]
    return found


def procfile_lines(procfile: str) -> dict[str, str]:
    """{name: command} of a Procfile's lines."""
    lines = {}
    for raw in procfile.splitlines():
        name, _, command = raw.partition(":")
        if command.strip() and not raw.lstrip().startswith("#"):
            lines[name.strip()] = command.strip()
    return lines


def _procfile_line(pid: int) -> str | None:
    """The Procfile line a process belongs to: honcho puts HONCHO_PROCESS_NAME=<line>.1 in its environment."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"HONCHO_PROCESS_NAME="):
            return item.split(b"=", 1)[1].decode().rsplit(".", 1)[0]
    return None


def role(pid: int, ppid: int, command: str, line: str | None, parent_role: str, worker_names: dict[int, str]) -> str:
    """honcho itself, the `sh -c` of a Procfile line, the line's process (named after the line), an RQ
    worker (by its registered name) or another child of the line's process."""
    if line is None:
        return "honcho" if "honcho" in command else command[:38]
    if command.startswith(("/bin/sh ", "sh ", "/bin/bash ", "bash ", "/usr/bin/bash ")):
        return f"{line} (sh)"
    if pid in worker_names:
        return f"{line}: worker {worker_names[pid]}"
    return line if parent_role in ("honcho", f"{line} (sh)") else f"{line}: child"


def registered_workers(redis_url: str) -> dict[int, str]:
    """pid → RQ worker name without host and pid (group-index) of every worker registered in Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        names = {}
        for key in client.smembers("rq:workers"):
            fields = client.hmget(key, "pid", "name")
            if fields[0]:
                name = (fields[1] or key).decode().rsplit(":", 1)[-1]
                names[int(fields[0])] = re.sub(r"-[^-]+-\d+-(\d+)$", r"-\1", name)
        return names
    finally:
        client.close()


def sample(root_pid: int, redis_url: str, procfile: str) -> list[Sample]:
    worker_lines = {name for name, command in procfile_lines(procfile).items() if "-m workers" in command}
    worker_names = registered_workers(redis_url)
    roles: dict[int, str] = {}
    samples = []
    for pid, ppid in tree(root_pid):  # parents first
        line = _procfile_line(pid)
        roles[pid] = role(pid, ppid, _cmdline(pid), line, roles.get(ppid, "honcho"), worker_names)
        category = ("honcho and shells" if line is None or roles[pid].endswith("(sh)") else
                    "workers" if line in worker_lines else line)
        pss, rss = _memory_kb(pid)
        samples.append(Sample(pid, ppid, roles[pid], category, pss, rss))
    return samples


def print_table(title: str, samples: list[Sample], before: dict[int, Sample] | None = None) -> float:
    """The per-process table (with each process's change since `before`) and the totals; returns the total MB."""
    print(f"\n{title}: {len(samples)} processes")
    print(f"{'pid':>8} {'ppid':>8}  {'process':<44} {'PSS MB':>8} {'RSS MB':>8}" + ("  change" if before else ""))
    for item in samples:
        change = ""
        if before is not None:
            old = before.get(item.pid)
            change = f"  {item.pss_mb - old.pss_mb:+6.1f}" if old else "  (new)"
        print(f"{item.pid:>8} {item.ppid:>8}  {item.role:<44} {item.pss_mb:>8.1f} {item.rss_kb / 1024:>8.1f}{change}")
    groups: dict[str, float] = {}
    for item in samples:
        groups[item.category] = groups.get(item.category, 0.0) + item.pss_mb
    total = sum(item.pss_mb for item in samples)
    change = f" ({total - sum(item.pss_mb for item in before.values()):+.1f} MB)" if before is not None else ""
    print("  " + ", ".join(f"{name} {mb:.1f} MB" for name, mb in groups.items()) + f"; total {total:.1f} MB{change}")
    return total

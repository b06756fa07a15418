"""Health rules (pure): what a measured fact about the system means, and the one-line fix for it.

Each rule takes plain data (bytes free, Redis's persistence settings, queue and worker counts, a folder and
whether it exists here) and returns a Finding: `ok`, `warning` or `error`, a message saying what is wrong,
and a fix naming the setting or command that mends it. The I/O that gathers the facts lives in
app/reports/system_health.py and the integration probes (app/integrations/health.py); the System page and
the banner show the findings.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

GIB = 1024 ** 3
LOW_SPACE_FRACTION = 0.10      # warning under 10 % free ...
LOW_SPACE_BYTES = 5 * GIB      # ... or under 5 GiB free
CRITICAL_SPACE_BYTES = 1 * GIB  # error under 1 GiB free
COPY_FACTOR = 2                # a copy into the library needs the book's size twice (source + copy, temp files)

OK, WARNING, ERROR = "ok", "warning", "error"


@dataclass(frozen=True)
class Finding:
    level: str                 # ok, warning, error
    message: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.level == OK


def size_text(size: int) -> str:
    """'12.3 GiB', '512.0 MiB'."""
    mib = size / 1024 ** 2
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.1f} MiB"


def disk_space(setting: str, folder: str, free: int, total: int, largest_book: int = 0) -> Finding:
    """Free space on `folder` (the value of `setting`): an error under 1 GiB or under twice the largest book
    in flight (a copy needs the book's size twice), a warning under 10 % of the disk or under 5 GiB."""
    shown = f"{setting} ({folder}) has {size_text(free)} free of {size_text(total)}"
    fix = f"Free space on the disk of {folder}, or point {setting} at a larger disk"
    needed = COPY_FACTOR * largest_book
    if free < CRITICAL_SPACE_BYTES:
        return Finding(ERROR, f"{shown}: under {size_text(CRITICAL_SPACE_BYTES)}, downloads and imports will fail",
                       fix)
    if needed and free < needed:
        return Finding(ERROR, f"{shown}: the largest book in flight ({size_text(largest_book)}) needs "
                              f"{size_text(needed)} to be copied", fix)
    if free < LOW_SPACE_BYTES or (total > 0 and free < total * LOW_SPACE_FRACTION):
        return Finding(WARNING, f"{shown}: under {size_text(LOW_SPACE_BYTES)} or 10 % of the disk", fix)
    return Finding(OK, shown)


def missing_folder(setting: str, folder: str) -> Finding:
    """A configured folder that is not there (not mounted, a typo): nothing can be measured on it."""
    return Finding(ERROR, f"{setting} ({folder}) is not a folder on this machine",
                   f"Create or mount {folder}, or correct {setting}")


def redis_persistence(config: Mapping[str, str]) -> Finding:
    """Redis's CONFIG GET answers (`appendonly`, `save`): queued jobs survive a Redis restart only with AOF
    (RDB snapshots lose what was queued since the last one; none at all loses every queue)."""
    if config.get("appendonly", "").lower() == "yes":
        return Finding(OK, "Redis writes an append-only file (appendonly yes): queued jobs survive a restart")
    fix = "Turn on AOF: redis-cli CONFIG SET appendonly yes, and appendonly yes in redis.conf (docs/operations.md)"
    if config.get("save", "").strip():
        return Finding(WARNING, f"Redis keeps only RDB snapshots (save {config['save'].strip()}), no append-only "
                                f"file: jobs queued since the last snapshot are lost when Redis restarts", fix)
    return Finding(WARNING, "Redis has no persistence (appendonly no, save \"\"): every queued job is lost when "
                            "Redis restarts (the database re-enqueues them, minutes later)", fix)


def idle_job_types(waiting: Mapping[str, int], group_of: Mapping[str, str], live: Mapping[str, int]) -> Finding:
    """Job types with queued jobs and no live worker of their group: those jobs wait forever."""
    stuck = sorted((job_type, count) for job_type, count in waiting.items()
                   if count > 0 and live.get(group_of.get(job_type, ""), 0) <= 0)
    if not stuck:
        return Finding(OK, "every job type with queued jobs has a live worker")
    groups = sorted({group_of.get(job_type, job_type) for job_type, _ in stuck})
    listed = ", ".join(f"{job_type} ({count} queued)" for job_type, count in stuck)
    return Finding(ERROR, f"No live worker for {listed}",
                   f"Start the workers: python -m workers {' '.join(groups)} (or python -m workers --all)")


def save_path_visible(client_label: str, client_path: str, where: str, local_path: str, exists: bool,
                      mapped: bool) -> Finding:
    """The download client saves into `client_path` (`where`: which setting decided it); `local_path` is that
    folder as this machine names it (REMOTE_PATH_MAPPINGS applied, `mapped` when one did). Imports read the
    finished files there, so it must exist here."""
    if exists:
        return Finding(OK, f"{client_label} saves into {client_path} ({where}), seen here as {local_path}")
    seen = f", mapped to {local_path}," if mapped else ""
    return Finding(WARNING, f"{client_label} saves into {client_path} ({where}){seen} which is not a folder on "
                            f"this machine: finished downloads cannot be imported",
                   f"Add REMOTE_PATH_MAPPINGS={client_path}=<the same folder as mounted here> (client=local)")


def failing_indexers(failing: Sequence[tuple[str, str | None]]) -> Finding:
    """Prowlarr's /api/v1/indexerstatus: (indexer name, disabled until) of each indexer it reports failing."""
    if not failing:
        return Finding(OK, "no indexer is failing")
    listed = ", ".join(f"{name} (disabled until {until})" if until else name for name, until in failing)
    return Finding(WARNING, f"Prowlarr reports failing indexers: {listed}; searches skip them",
                   "In Prowlarr → Indexers, test each one and fix its settings (or disable it)")

"""One call to the download client per poll tick for every monitored download, shared through Redis.

monitor_download keeps one job (and one jobs row) per download, but instead of asking the client for its own
torrent each poll reads it from a snapshot of all of them: a Redis hash (info hash → status as JSON) that
expires `max_age` seconds after it was fetched. The first poll that finds it expired takes a short lock,
asks the client once (qBittorrent: `torrents/info` for the project's category; Transmission: one `torrent-get`
with every monitored hash), stores the answer and releases the lock; polls that arrive meanwhile read the
previous answer (kept for twice `max_age`), or wait for the new one when there is none. Freshness is the
expiry of keys in Redis, so worker hosts whose clocks differ agree on it.

A torrent missing from the snapshot is not "not found" yet: the monitor looks it up on its own first (a torrent
added after the snapshot was taken, or one that sits in another category). When no snapshot can be had (the
client is unreachable, the lock holder died), `read` says so and the monitor falls back to its own look-up.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from app.integrations.errors import TransientServiceError
from app.integrations.torrent import DownloadClient, TorrentStatus
from app.pipeline.download_state import DownloadState

KEY = "rmab:torrent-snapshot:{kind}"
_MARK = "@"  # the field every stored snapshot has, also when the client listed no torrent
LOCK_SECONDS = 30.0  # longer than a client call may take (15 s timeout, one re-login); a dead holder frees it
WAIT_STEP = 0.05
# compare-and-delete: only the holder releases the lock (it may have expired and been taken by another poll)
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@dataclass(frozen=True)
class Reading:
    """One download's entry in the current snapshot. `known`: a snapshot was had (then `status` None means the
    torrent is not in it); not known: the caller must ask the client itself."""

    known: bool
    status: TorrentStatus | None = None


UNKNOWN = Reading(known=False)


def encode(status: TorrentStatus) -> str:
    return json.dumps({**asdict(status), "state": status.state.value})


def decode(raw: str | bytes) -> TorrentStatus:
    fields: dict[str, Any] = json.loads(raw)
    return TorrentStatus(**{**fields, "state": DownloadState(fields["state"])})


def read(connection: Any, kind: str, info_hash: str, *, client: Callable[[], DownloadClient], category: str,
         monitored: Callable[[], Sequence[str]], max_age: float, wait_limit: float = 5.0) -> Reading:
    """`info_hash`'s status from a snapshot at most `max_age` s old, fetching a new one when none is (one poll
    at a time per client kind). TransientServiceError of the fetch gives UNKNOWN (the caller asks on its own,
    with its own retries); a PermanentServiceError is raised."""
    known, statuses = read_many(connection, kind, [info_hash], client=client, category=category,
                                monitored=monitored, max_age=max_age, wait_limit=wait_limit)
    return Reading(True, statuses.get(info_hash.lower())) if known else UNKNOWN


def read_many(connection: Any, kind: str, info_hashes: Sequence[str], *, client: Callable[[], DownloadClient],
              category: str, monitored: Callable[[], Sequence[str]], max_age: float,
              wait_limit: float = 5.0) -> tuple[bool, dict[str, TorrentStatus]]:
    """`read` for many torrents at once (a poll batch, workers/poll_batch.py): (known, lower-case info hash →
    status of those in the snapshot). Not known: no snapshot could be had (each caller asks on its own)."""
    key = KEY.format(kind=kind)
    wanted = [info_hash.lower() for info_hash in info_hashes]
    deadline = time.monotonic() + wait_limit
    while True:
        pipe = connection.pipeline(transaction=False)
        pipe.hmget(key, [_MARK, *wanted])
        pipe.exists(f"{key}:fresh")
        (mark, *raws), fresh = pipe.execute()
        if mark is not None and fresh:
            return True, _decoded(wanted, raws)
        token = uuid.uuid4().hex
        if connection.set(f"{key}:lock", token, nx=True, px=int(LOCK_SECONDS * 1000)):
            try:
                statuses = {h.lower(): status for h, status in client().snapshot(category, monitored()).items()}
                store(connection, key, statuses, max_age)  # before the lock goes: no second fetch meanwhile
            except TransientServiceError:
                return False, {}
            finally:
                connection.eval(_RELEASE, 1, f"{key}:lock", token)
            return True, {h: statuses[h] for h in wanted if h in statuses}
        if mark is not None:  # another poll is fetching: the previous answer (under 2 × max_age old) meanwhile
            return True, _decoded(wanted, raws)
        if time.monotonic() >= deadline:
            return False, {}
        time.sleep(WAIT_STEP)


def _decoded(hashes: list[str], raws: list[Any]) -> dict[str, TorrentStatus]:
    return {info_hash: decode(raw) for info_hash, raw in zip(hashes, raws, strict=True) if raw is not None}


def store(connection: Any, key: str, statuses: dict[str, TorrentStatus], max_age: float) -> None:
    """Replace the snapshot at once (RENAME of a fully written key): fresh for `max_age` seconds, kept twice as
    long for the polls that come while the next one is being fetched."""
    staging = f"{key}:staging:{uuid.uuid4().hex}"
    mapping = {_MARK: "1", **{info_hash.lower(): encode(status) for info_hash, status in statuses.items()}}
    fresh_ms = max(1, int(max_age * 1000))
    pipe = connection.pipeline(transaction=True)
    pipe.hset(staging, mapping=mapping)
    pipe.pexpire(staging, 2 * fresh_ms)
    pipe.rename(staging, key)
    pipe.set(f"{key}:fresh", "1", px=fresh_ms)
    pipe.execute()

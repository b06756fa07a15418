"""What must hold after every fault, each as its own assertion with the stack's diagnosis:

- every request ends `available` (or, where a scenario says so, in a terminal status with a reason),
  and once `available` it never went back;
- the library files are byte-identical to the torrent's content, and no temporary copy is left;
- no jobs row is left pending/delayed/active/stuck (once the requests settled, within JOBS_SETTLE_TIMEOUT);
- one torrent in qBittorrent per request (no second torrent added);
- Prowlarr never answered 401;
- after stopping the stack, none of its processes survives (checked in /proc by the run's marker).
"""
from __future__ import annotations

import time

from faults.books import sha256_of
from faults.stack import Stack

TEMP_PREFIX = ".rmab-partial-"


def assert_requests_end(stack: Stack, request_ids: list[str], timeout: float,
                        allowed: dict[str, tuple[str, ...]] | None = None) -> dict[str, str]:
    """Every request settles as `available` (or one of `allowed[request_id]`, which then needs a reason)."""
    statuses = stack.wait_settled(request_ids, timeout)
    for request_id in request_ids:
        expected = (allowed or {}).get(request_id, ("available",))
        status = statuses.get(request_id)
        assert status in expected, (f"request {request_id} ended {status!r}, expected one of {expected} "
                                    f"(waited {timeout} s)\n{stack.diagnose()}")
        if status != "available":
            assert stack.request_row(request_id)["error"], f"request {request_id} is {status} without a reason"
    return statuses


def assert_never_left_available(stack: Stack, request_ids: list[str]) -> None:
    for request_id in request_ids:
        seen = stack.timeline.statuses(request_id)
        if "available" in seen:
            after = seen[seen.index("available"):]
            assert after == ["available"], (f"request {request_id} left `available` after reaching it: "
                                            f"{' -> '.join(seen)}\n{stack.diagnose()}")


def assert_library_files(stack: Stack, request_ids: list[str]) -> None:
    for request_id in request_ids:
        book = stack.books[request_id]
        target = book.target(stack.media)
        assert target.is_dir(), f"{target} missing\n{stack.diagnose()}"
        present = sorted(p.name for p in target.iterdir())
        assert present == sorted(book.digests), f"{target} holds {present}, expected {sorted(book.digests)}"
        for name, digest in book.digests.items():
            assert sha256_of(target / name) == digest, f"{target / name} differs from the torrent's content"
    leftovers = [str(p) for p in stack.media.rglob(f"{TEMP_PREFIX}*")]
    assert not leftovers, f"temporary copies left in MEDIA_DIR: {leftovers}"


# Long enough for the scheduler's lost-job pass (LOST_JOB_GRACE 60 s, every 30 s) to finish a row whose RQ
# job was lost; the time it took is reported (jobs_settled_after_s).
JOBS_SETTLE_TIMEOUT = 100


def assert_no_unfinished_jobs(stack: Stack, timeout: float = JOBS_SETTLE_TIMEOUT) -> None:
    started = time.monotonic()
    left = stack.wait_jobs_finished(timeout)
    stack.jobs_settled_after = time.monotonic() - started
    assert not left, ("jobs rows left unfinished: " + ", ".join(f"{j['type']} {j['id']} {j['status']}" for j in left)
                      + f"\n{stack.diagnose()}")


def assert_one_torrent_per_request(stack: Stack, request_ids: list[str]) -> None:
    torrents = stack.qbt_admin.torrents()
    for request_id in request_ids:
        tagged = [t["name"] for t in torrents if f"request-{request_id}" in (t.get("tags") or "")]
        assert len(tagged) == 1, f"request {request_id} has {len(tagged)} torrents in qBittorrent: {tagged}"
    assert len(torrents) == len(request_ids), f"{len(torrents)} torrents for {len(request_ids)} requests"


def assert_prowlarr_never_unauthorized(stack: Stack) -> None:
    assert not stack.prowlarr.unauthorized(), f"Prowlarr answered 401 to: {stack.prowlarr.unauthorized()}"


def assert_outcome(stack: Stack, request_ids: list[str], timeout: float = 150,
                   allowed: dict[str, tuple[str, ...]] | None = None, torrents: bool = True) -> None:
    """All the invariants, then a graceful stop and the orphan check."""
    assert_requests_end(stack, request_ids, timeout, allowed)
    assert_no_unfinished_jobs(stack)
    assert_never_left_available(stack, request_ids)
    available = [rid for rid in request_ids if stack.request_row(rid)["status"] == "available"]
    assert_library_files(stack, available)
    if torrents:
        assert_one_torrent_per_request(stack, request_ids)
    assert_prowlarr_never_unauthorized(stack)
    assert_no_survivors(stack)


def assert_no_survivors(stack: Stack) -> None:
    stack.stop()
    survivors = stack.survivors()
    assert not survivors, f"processes of the stack survived its stop: {survivors}"

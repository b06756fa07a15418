"""Fault injection: requests in flight through every step of the real stack while a worker is
killed, PostgreSQL or Redis crash, the whole stack is SIGKILLed, a worker is frozen past its lease, or
the best release is a malformed .torrent. After each, the invariants of faults/checks.py must hold,
and the recovery time (fault → the request moving again: its status or one of its jobs changing) is
reported as `FAULT <scenario>: recovered in N s` and in tests/faults/last-run.json.

Each test runs its own PostgreSQL cluster, Redis, qbittorrent-nox, fake Prowlarr and Plex and every
Procfile line (faults/stack.py), with a 6 s job lease, 1 s monitor polls and 1 s retry back-off.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from faults import report
from faults.books import Book
from faults.checks import assert_outcome
from faults.prowlarr import Hold, download_of, search_for
from faults.servers import wait_until
from faults.stack import Stack

pytestmark = pytest.mark.faults
TIMEOUT = 150  # per scenario, for the requests to settle after the fault


def recovery_of(stack: Stack, request_ids: list[str], fault_at: float) -> float | None:
    """The slowest of the requests to move again after the fault (None if one never did)."""
    times = [stack.timeline.moved_after(rid, fault_at) for rid in request_ids]
    return None if None in times else max(times)


def check_and_report(stack: Stack, scenario: str, request_ids: list[str], fault_at: float, **report_args) -> None:
    """assert_outcome, then (even when it failed) the recovery figure."""
    try:
        assert_outcome(stack, request_ids, timeout=TIMEOUT)
    finally:
        report_recovery(stack, scenario, request_ids, fault_at, **report_args)


def report_recovery(stack: Stack, scenario: str, request_ids: list[str], fault_at: float,
                    killed_job: dict | None = None, recovered: Callable[[], float | None] | None = None,
                    **details) -> None:
    """Record and print the scenario's figures and each request's timeline. `killed_job`: the job whose
    worker died, to report when it was declared stuck; `recovered`: a scenario's own recovery measure."""
    if killed_job is not None:
        details["stuck_after_s"] = stack.timeline.job_became(killed_job["request_id"], killed_job["id"],
                                                             "stuck", fault_at)
    available = [stack.timeline.first_time(rid, "available", fault_at) for rid in request_ids]
    if None not in available:
        details["all_available_after_s"] = max(available) - fault_at
    if len(request_ids) > 1:
        details["moved_after_s"] = {stack.books[rid].title: _rounded(stack.timeline.moved_after(rid, fault_at))
                                    for rid in request_ids}
    if stack.jobs_settled_after is not None:
        details["jobs_settled_after_s"] = stack.jobs_settled_after
    figure = recovered() if recovered is not None else recovery_of(stack, request_ids, fault_at)
    report.record(scenario, figure, **details)
    for request_id in request_ids:
        print(f"timeline of {request_id} ({stack.books[request_id].title}), t=0 at the fault:\n"
              + stack.timeline.describe(request_id, fault_at))


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def kill_worker_running(stack: Stack, job_id: str) -> float:
    pid = stack.worker_running(job_id)
    os.kill(pid, signal.SIGKILL)
    stack.sample_now()  # the state right after the kill: the baseline the recovery is measured from
    return time.monotonic()


def is_active(job: dict) -> bool:
    return job["status"] == "active"


def test_happy_path_through_the_private_stack(make_stack):
    """The control: two requests travel pending → available with nothing broken."""
    stack = make_stack()
    books = [stack.book("The Way of Kings", "Brandon Sanderson"), stack.book("Dune", "Frank Herbert")]
    stack.prowlarr.releases = [book.release() for book in books]
    started = time.monotonic()
    request_ids = [stack.request(book) for book in books]
    assert_outcome(stack, request_ids, timeout=90)
    reached = max(stack.timeline.first_time(rid, "available") for rid in request_ids) - started
    print(f"\nBASELINE happy-path: both requests available in {reached:.1f} s")


# ---- kill -9 of a worker of each pipeline group, mid-step ---------------------------------------------

def test_kill_worker_mid_search(make_stack):
    stack = make_stack()
    book = stack.book("Dune", "Frank Herbert")
    stack.prowlarr.releases = [book.release()]
    hold = stack.prowlarr.hold(search_for("Dune"))
    request_id = stack.request(book)
    assert hold.arrived.wait(30), "the search never reached Prowlarr"
    job = stack.job_of(request_id, "search_indexers", is_active)
    fault_at = kill_worker_running(stack, job["id"])
    hold.release()
    check_and_report(stack, "kill-worker-mid-search", [request_id], fault_at, killed_job=job)


def test_kill_worker_mid_download(make_stack):
    """download_torrent killed while it fetches the .torrent from Prowlarr."""
    stack = make_stack()
    book = stack.book("Hyperion", "Dan Simmons")
    stack.prowlarr.releases = [book.release()]
    hold = stack.prowlarr.hold(download_of(book.release_title))
    request_id = stack.request(book)
    assert hold.arrived.wait(30), "the release download never reached Prowlarr"
    job = stack.job_of(request_id, "download_torrent", is_active)
    fault_at = kill_worker_running(stack, job["id"])
    hold.release()
    check_and_report(stack, "kill-worker-mid-download", [request_id], fault_at, killed_job=job)


def test_kill_worker_mid_poll(make_stack):
    """monitor_download killed during a poll: qBittorrent is frozen (SIGSTOP) so the poll is caught active."""
    stack = make_stack()
    book = stack.book("Mistborn", "Brandon Sanderson", present=False)
    stack.prowlarr.releases = [book.release()]
    request_id = stack.request(book)
    stack.job_of(request_id, "monitor_download", lambda j: j["polls"] >= 2)
    qbittorrent = stack.qbt.process.pid
    os.kill(qbittorrent, signal.SIGSTOP)
    try:
        job = stack.job_of(request_id, "monitor_download", is_active, timeout=20)
        fault_at = kill_worker_running(stack, job["id"])
    finally:
        os.kill(qbittorrent, signal.SIGCONT)
    book.arrive(stack.qbt_admin)  # the download finishes meanwhile
    check_and_report(stack, "kill-worker-mid-poll", [request_id], fault_at, killed_job=job)


def test_kill_worker_mid_copy(make_stack):
    """organize_files killed while it copies a 512 MiB file into MEDIA_DIR (its temporary copy exists)."""
    stack = make_stack()
    size = 512 * 2**20
    book = stack.book("The Stand", "Stephen King", audio_sizes=(size,))
    stack.prowlarr.releases = [book.release()]
    request_id = stack.request(book)
    partial: list = []

    def copying() -> bool:
        partial[:] = list(stack.media.rglob(".rmab-partial-*"))
        return bool(partial)

    wait_until(copying, 90, "organize_files to start copying", interval=0.005)
    job = stack.job_of(request_id, "organize_files", is_active, timeout=5)
    fault_at = kill_worker_running(stack, job["id"])
    copied = partial[0].stat().st_size
    assert copied < size, "the copy was finished before the kill: the scenario did not hit mid-copy"
    check_and_report(stack, "kill-worker-mid-copy", [request_id], fault_at, killed_job=job,
                     copied_before_kill_mib=copied >> 20)


# ---- faults of the whole system, with requests at every step -----------------------------------------

CONVOY_WORKERS = {"search_indexers": 2, "download_torrent": 2}  # held replies must not block the others


@dataclass
class Convoy:
    """Five requests, one at every step when the fault strikes: `shelved` is downloaded and waits for Plex
    (which sees it only after the fault), `polled` is polled by monitor_download (its files are not
    there yet), `fetching` waits for its .torrent (download_torrent mid-fetch), `searching` waits for
    Prowlarr's search reply, and `copying` is being copied into MEDIA_DIR (256 MiB) by organize_files."""
    shelved: str
    polled: str
    fetching: str
    searching: str
    copying: str
    poll_book: Book
    holds: tuple[Hold, Hold]

    @property
    def ids(self) -> list[str]:
        return [self.shelved, self.polled, self.fetching, self.searching, self.copying]

    def release(self, stack: Stack) -> None:
        """After the fault: the held replies go out, Plex sees the shelved book, the polled download completes."""
        for hold in self.holds:
            hold.release()
        stack.hidden_from_plex.discard(self.shelved)

    def statuses(self, stack: Stack) -> dict[str, str]:
        return {stack.books[rid].title: (stack.timeline.statuses(rid) or ["?"])[-1] for rid in self.ids}


def convoy(stack: Stack) -> Convoy:
    shelf_book = stack.book("Foundation", "Isaac Asimov")
    poll_book = stack.book("Mistborn", "Brandon Sanderson", present=False)
    fetch_book = stack.book("Hyperion", "Dan Simmons")
    search_book = stack.book("Neuromancer", "William Gibson")
    copy_book = stack.book("The Stand", "Stephen King", audio_sizes=(256 * 2**20,))
    stack.prowlarr.releases = [b.release() for b in (shelf_book, poll_book, fetch_book, search_book, copy_book)]
    fetch_hold = stack.prowlarr.hold(download_of(fetch_book.release_title))
    search_hold = stack.prowlarr.hold(search_for("Neuromancer"))

    shelved = stack.request(shelf_book)
    stack.hidden_from_plex.add(shelved)
    stack.job_of(shelved, "organize_files", lambda j: j["status"] == "completed")
    polled = stack.request(poll_book)
    stack.job_of(polled, "monitor_download", lambda j: j["polls"] >= 1)
    fetching = stack.request(fetch_book)
    assert fetch_hold.arrived.wait(30), "the release download never reached Prowlarr"
    searching = stack.request(search_book)
    assert search_hold.arrived.wait(30), "the search never reached Prowlarr"
    copying = stack.request(copy_book)
    wait_until(lambda: any(copy_book.target(stack.media).glob(".rmab-partial-*")), 90,
               "organize_files to start copying", interval=0.005)
    return Convoy(shelved, polled, fetching, searching, copying, poll_book, (fetch_hold, search_hold))


def test_postgres_restart(make_stack):
    """PostgreSQL crashes (immediate shutdown) and comes back 3 s later; Prowlarr's held replies reach the
    workers while it is down."""
    stack = make_stack(workers=CONVOY_WORKERS)
    cars = convoy(stack)
    stack.sample_now()  # the baseline: PostgreSQL cannot be sampled once it is down
    stack.pg.crash()
    fault_at = time.monotonic()
    at_fault = cars.statuses(stack)
    time.sleep(1)
    cars.release(stack)
    time.sleep(2)
    stack.pg.start()
    outage = time.monotonic() - fault_at
    cars.poll_book.arrive(stack.qbt_admin)
    check_and_report(stack, "postgres-restart", cars.ids, fault_at, outage_s=outage, at_fault=at_fault)


def test_redis_crash_without_persistence(make_stack):
    """Redis is SIGKILLed (no RDB, no AOF) and started empty 2 s later: every queued, delayed and running
    RQ job is gone; Prowlarr's held replies reach the workers while it is down."""
    stack = make_stack(workers=CONVOY_WORKERS)
    cars = convoy(stack)
    stack.redis.crash()
    stack.sample_now()  # the baseline
    fault_at = time.monotonic()
    at_fault = cars.statuses(stack)
    time.sleep(1)
    cars.release(stack)
    time.sleep(1)
    stack.redis.start()
    outage = time.monotonic() - fault_at
    cars.poll_book.arrive(stack.qbt_admin)
    check_and_report(stack, "redis-crash", cars.ids, fault_at, outage_s=outage, at_fault=at_fault)


def test_whole_stack_sigkill_and_restart(make_stack):
    """Every process of the stack (web, scheduler, pools, workers) SIGKILLed at once, then started again."""
    stack = make_stack(workers=CONVOY_WORKERS)
    cars = convoy(stack)
    killed = stack.kill_all()
    stack.sample_now()  # the baseline
    fault_at = time.monotonic()
    at_fault = cars.statuses(stack)
    cars.release(stack)
    stack.start()
    restarted_after = time.monotonic() - fault_at
    cars.poll_book.arrive(stack.qbt_admin)
    check_and_report(stack, "whole-stack-sigkill", cars.ids, fault_at, processes_killed=len(killed),
                     restarted_after_s=restarted_after, at_fault=at_fault)


# ---- a frozen worker past its lease (fencing) ---------------------------------------------------------

def test_sigstop_past_the_lease_then_sigcont(make_stack):
    """A download_torrent worker frozen mid-fetch (SIGSTOP) past its lease: the job is retried by the other
    worker and the request completes. Then the frozen worker resumes (SIGCONT) and gets its reply: its stale
    run must change nothing (no second download record, no second monitor, the request stays available)."""
    stack = make_stack(workers={"download_torrent": 2})
    book = stack.book("Hyperion", "Dan Simmons")
    stack.prowlarr.releases = [book.release()]
    hold = stack.prowlarr.hold(download_of(book.release_title))
    request_id = stack.request(book)
    assert hold.arrived.wait(30), "the release download never reached Prowlarr"
    job = stack.job_of(request_id, "download_torrent", is_active)
    pid = stack.worker_running(job["id"])
    os.kill(pid, signal.SIGSTOP)
    stack.sample_now()
    fault_at = time.monotonic()
    try:
        statuses = stack.wait_settled([request_id], TIMEOUT)
        retry_ended = stack.run_end_marker(job["id"])  # the retry's run, done by the other worker
    finally:
        os.kill(pid, signal.SIGCONT)
    hold.release()
    frozen_for = time.monotonic() - fault_at
    stack.wait_run_ended(job["id"], retry_ended, 60)  # the stale run got its reply and finished
    try:
        assert statuses.get(request_id) == "available", f"not completed while the worker was frozen: {statuses}"
        assert len(stack.prowlarr.downloads_of(book.release_title)) == 2  # the retry's fetch and the stale one
        history = stack.download_history(request_id)
        monitors = [j for j in stack.jobs(request_id) if j["type"] == "monitor_download"]
        assert len(history) == 1, f"the stale run recorded another download: {history}\n{stack.diagnose()}"
        assert len(monitors) == 1, f"the stale run started another monitor: {monitors}\n{stack.diagnose()}"
    finally:
        report_recovery(stack, "sigstop-past-lease", [request_id], fault_at, killed_job=job, frozen_for_s=frozen_for)
    assert_outcome(stack, [request_id], timeout=TIMEOUT)


# ---- bad input --------------------------------------------------------------------------------------

def test_malformed_torrent_as_the_best_release(make_stack):
    """The best-ranked release serves `d4:infod4:namei5eee` (an info dict whose name is an integer); the
    alternate is good: the download moves on to it, with one torrent added."""
    stack = make_stack()
    book = stack.book("Neuromancer", "William Gibson")
    malformed = book.release(seeders=90)
    malformed.torrent = b"d4:infod4:namei5eee"
    good = book.release(seeders=20, title=f"{book.author} - {book.title} [M4B]")
    stack.prowlarr.releases = [malformed, good]
    request_id = stack.request(book)
    wait_until(lambda: stack.prowlarr.downloads_of(malformed.title), 60, "the malformed release to be fetched")
    fault_at = stack.prowlarr.downloads_of(malformed.title)[0].at

    def moved_on_to_the_alternate() -> float | None:
        fetched = stack.prowlarr.downloads_of(good.title)
        return fetched[0].at - fault_at if fetched else None

    check_and_report(stack, "malformed-torrent", [request_id], fault_at, recovered=moved_on_to_the_alternate)

"""Two worker hosts and partitions.

The second host is a network namespace with its own address (faults/hosts.py) running `python -m workers`
for the groups that need only the network (and, in the partition scenarios, organize_files too: the
namespace shares the filesystem, as a host with the media disks mounted at the same paths), connected to
the stack's PostgreSQL and Redis over the veth; the stack's own `workers` line runs the other groups.

A partition cuts the namespace off (its link down, or only PostgreSQL or only Redis blackholed from inside
it) while it runs a job at a known point (search and .torrent fetch held at Prowlarr, a poll caught with
qBittorrent frozen, a 256 MiB copy under way). The host side then runs host 2's groups (as a second host
with the same groups would): the job's lease runs out, its run is repeated there and the request ends
`available` with byte-identical files. Then the link comes back: the cut-off run wakes up and must write
nothing (rows, events, download records, torrents, the library's files are compared before and after),
and host 2's workers rejoin: with the host side's extra workers gone, a second request runs through them.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from faults.books import Book
from faults.checks import assert_library_files, assert_outcome
from faults.hosts import HOSTNAME, SecondHost
from faults.prowlarr import Hold, download_of, search_for
from faults.servers import wait_until
from faults.stack import Stack
from faults.test_faults import TIMEOUT, is_active, report_recovery

pytestmark = pytest.mark.faults

NETWORK_GROUPS = ["search_indexers", "download_torrent", "monitor_download"]   # Prowlarr and the client only
HOST2_GROUPS = [*NETWORK_GROUPS, "organize_files"]   # a partition can strike any step of the pipeline
HOST2, TAKEOVER = "host2-workers", "host1-takeover"


def two_hosts(make_stack, second_host: SecondHost, groups: list[str]) -> Stack:
    """The stack with `groups` run only by host 2 (the Procfile's `workers` line leaves them out)."""
    stack = make_stack(workers={group: 0 for group in groups}, second_host=second_host)
    process = stack.start_workers(HOST2, groups, on_second_host=True)
    assert second_host.holds(process.pid), "host 2's supervisor does not run inside the namespace"
    return stack


def completed_in(stack: Stack, process: str) -> set[str]:
    return {job for job, ends in stack.jobs_ended(process).items() if "completed" in ends}


def test_requests_flow_through_both_hosts(second_host, make_stack):
    """Host 2 searches, fetches and polls; the host imports (it has the media disks) and scans. Every
    network job of both requests completed on host 2, every import on the host."""
    stack = two_hosts(make_stack, second_host, NETWORK_GROUPS)
    books = [stack.book("The Way of Kings", "Brandon Sanderson"), stack.book("Dune", "Frank Herbert")]
    stack.prowlarr.releases = [book.release() for book in books]
    started = time.monotonic()
    request_ids = [stack.request(book) for book in books]
    host2_names = [name for name in stack.worker_names() if f"-{HOSTNAME}-" in name]
    assert sorted(name.split("-", 1)[0] for name in host2_names) == sorted(NETWORK_GROUPS), host2_names
    assert_outcome(stack, request_ids, timeout=90)
    reached = max(stack.timeline.first_time(rid, "available") for rid in request_ids) - started
    on_host2, on_host1 = completed_in(stack, HOST2), completed_in(stack, "workers")
    for request_id in request_ids:
        jobs = stack.jobs(request_id)
        for job in jobs:
            where = on_host2 if job["type"] in NETWORK_GROUPS else on_host1
            assert job["id"] in where, (f"{job['type']} {job['id']} did not complete on the "
                                        f"{'second host' if where is on_host2 else 'host'}\n{stack.diagnose()}")
        assert {job["type"] for job in jobs} >= {*NETWORK_GROUPS, "organize_files"}
    pids = sorted({name.split(f"-{HOSTNAME}-")[1].split("-")[0] for name in host2_names})
    print(f"\nTWO HOSTS: both requests available in {reached:.1f} s; host 2 ({HOSTNAME}, worker pids {pids}) "
          f"completed {len(on_host2)} jobs, the host {len(on_host1)}")


def test_second_host_is_removed_even_after_a_failure():
    """The fixture's clean-up: a scenario that fails with a worker still running inside leaves no namespace,
    no veth and no process behind."""
    host = SecondHost.create()
    sleeper = host.popen(["sleep", "600"])
    with pytest.raises(RuntimeError, match="scenario failed"):
        try:
            wait_until(lambda: host.holds(sleeper.pid), 5, "the process to enter the namespace")
            raise RuntimeError("scenario failed")
        finally:
            host.close()
    assert sleeper.wait(10) == -signal.SIGKILL
    assert host.leftovers() == []


# ---- partitions ---------------------------------------------------------------------------------------

@dataclass
class Step:
    """Where a job of host 2 is caught: `prepare` sets up the book and whatever holds the job at that point
    (before the request), `caught` waits until the job is there, `resume` lets it go on after the fault."""
    job_type: str
    prepare: Callable[[Stack, Book], None] = lambda stack, book: None
    caught: Callable[[Stack, Book], None] = lambda stack, book: None
    resume: Callable[[Stack, Book], None] = lambda stack, book: None
    book_kwargs: dict = field(default_factory=dict)
    holds: list[Hold] = field(default_factory=list)


def held_at_prowlarr(job_type: str, rule: Callable[[Book], Callable]) -> Step:
    step = Step(job_type)
    step.prepare = lambda stack, book: step.holds.append(stack.prowlarr.hold(rule(book)))
    step.caught = lambda stack, book: _assert_arrived(step.holds[0])
    step.resume = lambda stack, book: step.holds[0].release()
    return step


def _assert_arrived(hold: Hold) -> None:
    assert hold.arrived.wait(60), "the held request never reached Prowlarr"


def mid_poll() -> Step:
    """qBittorrent frozen (SIGSTOP) so that a poll is caught waiting for its answer; the download completes
    after the fault."""
    def caught(stack: Stack, book: Book) -> None:
        request_id = next(rid for rid, b in stack.books.items() if b is book)
        stack.job_of(request_id, "monitor_download", lambda j: j["polls"] >= 2)
        os.kill(stack.qbt.process.pid, signal.SIGSTOP)

    def resume(stack: Stack, book: Book) -> None:
        os.kill(stack.qbt.process.pid, signal.SIGCONT)
        book.arrive(stack.qbt_admin)

    return Step("monitor_download", caught=caught, resume=resume, book_kwargs={"present": False})


def mid_copy() -> Step:
    def caught(stack: Stack, book: Book) -> None:
        wait_until(lambda: any(book.target(stack.media).glob(".rmab-partial-*")), 90,
                   "organize_files to start copying", interval=0.005)

    return Step("organize_files", caught=caught, book_kwargs={"audio_sizes": (256 * 2**20,)})


STEPS: dict[str, Callable[[], Step]] = {
    "search": lambda: held_at_prowlarr("search_indexers", lambda book: search_for(book.title)),
    "download": lambda: held_at_prowlarr("download_torrent", lambda book: download_of(book.release_title)),
    "poll": mid_poll,
    "copy": mid_copy,
}


@dataclass
class Cut:
    """A fault of host 2's network: `apply` and `undo` on the SecondHost. `takes_the_job`: the cut-off run
    loses its lease (it cannot reach PostgreSQL), so the host side runs the job again; with only Redis
    unreachable the run still holds its lease in the record of truth and does its work, the host side
    carries on from the rows it wrote (the next job, which it could not enqueue, is enqueued again)."""
    name: str
    apply: Callable[[SecondHost], None]
    undo: Callable[[SecondHost], None]
    takes_the_job: bool = True


LINK = Cut("link", SecondHost.cut, SecondHost.heal)
POSTGRES_ONLY = Cut("postgres", lambda h: h.block(h.pg_address), lambda h: h.unblock(h.pg_address))
REDIS_ONLY = Cut("redis", lambda h: h.block(h.redis_address), lambda h: h.unblock(h.redis_address),
                 takes_the_job=False)


def partition_scenario(make_stack, second_host: SecondHost, step_name: str, cut: Cut) -> None:
    stack = two_hosts(make_stack, second_host, HOST2_GROUPS)
    step = STEPS[step_name]()
    book = stack.book("Hyperion", "Dan Simmons", **step.book_kwargs)
    rejoin_book = stack.book("Dune", "Frank Herbert")
    stack.prowlarr.releases = [book.release(), rejoin_book.release()]
    step.prepare(stack, book)
    request_id = stack.request(book)
    step.caught(stack, book)
    job = stack.job_of(request_id, step.job_type, is_active, timeout=20)
    worker = stack.worker_running(job["id"])
    assert second_host.holds(worker), f"{step.job_type} runs on the host, not on host 2"

    stack.sample_now()
    cut.apply(second_host)
    fault_at = time.monotonic()
    scenario = f"partition-{cut.name}-mid-{step_name}"
    try:
        step.resume(stack, book)
        stack.start_workers(TAKEOVER, HOST2_GROUPS)   # the host side runs host 2's groups too
        statuses = stack.wait_settled([request_id], TIMEOUT)
        assert statuses.get(request_id) == "available", f"not available while cut off: {statuses}\n{stack.diagnose()}"
        assert not stack.wait_jobs_finished(60), f"jobs left unfinished\n{stack.diagnose()}"
        assert_library_files(stack, [request_id])
        if cut.takes_the_job:
            rerun_on_host = stack.jobs_ended(TAKEOVER).get(job["id"], [])
            assert "completed" in rerun_on_host, \
                f"the cut-off {step.job_type} was not run again on the host side\n{stack.diagnose()}"
        settled = stack.written_state([request_id])
        retry_ended = stack.run_end_marker(job["id"])
    except BaseException:
        report_recovery(stack, scenario, [request_id], fault_at, cut_for_s=time.monotonic() - fault_at)
        raise
    finally:
        cut.undo(second_host)
    healed_at = time.monotonic()
    cut_for = healed_at - fault_at
    # The cut-off run gets its answers now (TCP retransmits what the link lost) and ends; or its worker
    # gave up on Redis meanwhile (RQ quits after its connection timed out) and host 2's supervisor starts
    # another. Either way it must have written nothing.
    wait_until(lambda: stack.run_end_marker(job["id"]) not in (retry_ended, None) or not alive(stack, worker),
               120, f"the end of the cut-off run of job {job['id']}", interval=0.1)
    details = {"cut_for_s": cut_for, "stale_run_ended_after_heal_s": time.monotonic() - healed_at,
               "cut_off_worker": "resumed" if alive(stack, worker) else "exited, restarted"}
    try:
        assert_wrote_nothing(stack, settled, stack.written_state([request_id]))
        stack.stop_process(TAKEOVER)   # from now on only host 2 runs its groups: it must have rejoined
        rejoin_id = stack.request(rejoin_book)
        assert_outcome(stack, [request_id, rejoin_id], timeout=TIMEOUT)
        rejoined = completed_in(stack, HOST2)
        for rejoin_job in stack.jobs(rejoin_id):
            if rejoin_job["type"] in HOST2_GROUPS:
                assert rejoin_job["id"] in rejoined, \
                    f"{rejoin_job['type']} of the second request did not run on host 2"
        details["rejoined_available_after_heal_s"] = stack.timeline.first_time(rejoin_id, "available") - healed_at
    finally:
        report_recovery(stack, scenario, [request_id], fault_at, **details)


class StaleWrite(AssertionError):
    """The cut-off run wrote after the link came back."""


def assert_wrote_nothing(stack: Stack, before: dict, after: dict) -> None:
    changed = {table: {"before": before[table], "after": after[table]} for table in before
               if before[table] != after[table]}
    if changed:
        raise StaleWrite(f"the cut-off run wrote after the link came back, in {sorted(changed)}: {changed}\n"
                         f"{stack.diagnose()}")


def alive(stack: Stack, pid: int) -> bool:
    return pid in [found for found, _ in stack.survivors()]


# The cut-off run's writes after the link comes back are refused: every download write and the import's
# audiobook update are fenced in their own statement (docs/failure-handling.md); StaleWrite would say otherwise.
@pytest.mark.parametrize("step_name", STEPS)
def test_link_cut_mid_step(second_host, make_stack, step_name):
    partition_scenario(make_stack, second_host, step_name, LINK)


def test_postgres_unreachable_from_second_host_only(second_host, make_stack):
    partition_scenario(make_stack, second_host, "search", POSTGRES_ONLY)


def test_redis_unreachable_from_second_host_only(second_host, make_stack):
    partition_scenario(make_stack, second_host, "download", REDIS_ONLY)

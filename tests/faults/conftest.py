"""Fault-injection suite: the `faults` marker, the `stack` fixture and the recovery-time summary.

Run: `python3 -m pytest tests/faults -x -s -q`; skip locally with `-m "not faults"`.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from faults import report
from faults.hosts import SecondHost
from faults.stack import Stack

# Not pytest's tmp_path: other sessions on this machine rotate /tmp/pytest-of-<user> (3 kept), which
# would delete a failed scenario's logs before anyone reads them. Bulky files are removed by Stack.close.
RUNS = Path("/tmp/rmab-faults")
KEEP_RUNS = 40


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection scenarios on a whole private stack (slow, ~10 min)")


def _run_dir(test_name: str) -> Path:
    RUNS.mkdir(exist_ok=True)
    for old in sorted(RUNS.iterdir())[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)
    return RUNS / f"{time.strftime('%Y%m%d-%H%M%S')}-{re.sub(r'[^A-Za-z0-9_]+', '_', test_name)[:60]}"


@pytest.fixture
def make_stack(request):
    """make_stack(workers={...}, settings={...}) starts a private stack; every one is closed after the test,
    whatever happened (processes killed, servers stopped, PostgreSQL's directory removed). Its logs stay in
    /tmp/rmab-faults/<time>-<test>/stackN/logs."""
    stacks: list[Stack] = []
    root = _run_dir(request.node.name)

    def start(**kwargs) -> Stack:
        stack = Stack(root / f"stack{len(stacks)}", **kwargs)
        stacks.append(stack)
        return stack.__enter__()

    yield start
    for stack in stacks:
        stack.close()


@pytest.fixture
def second_host():
    """A second worker host: a network namespace with its own address on a veth pair (faults/hosts.py).
    Removed after the test whatever happened, with anything still running inside it. Request it before
    make_stack, so the stack (which kills its own processes first) is closed before it."""
    host = SecondHost.create()
    try:
        yield host
    finally:
        host.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    result = outcome.get_result()
    if result.when == "call":
        report.set_outcome(item.nodeid, result.passed)


def pytest_terminal_summary(terminalreporter) -> None:
    if report.RESULTS:
        terminalreporter.section("fault recovery times")
        for scenario, entry in report.RESULTS.items():
            terminalreporter.write_line(report.summary_line(scenario, entry))


def pytest_sessionfinish(session) -> None:
    report.write_last_run()

"""monitor_download's polling policy, by table: back-off while nothing moves, progress logged in 5 % steps, the stall
rule's pure parts, the reconnect delay, decide_poll, and the poll state kept in job payloads (rows written by older code
must read back the same)."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.pipeline.monitor_policy import (
    PollOutcome,
    PollState,
    decide_poll,
    moved,
    next_delay,
    progress_to_log,
    reconnect_delay,
    stalled_too_long,
)

# --- back-off, progress steps and the stall limit ------------------------------------------------------------

def test_polling_backs_off_while_nothing_moves():
    assert [next_delay(n) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert next_delay(0, 1.0) == 1.0 and next_delay(99) == 300


@pytest.mark.parametrize("previous,percent,log", [
    (None, 0, True), (0, 0, False), (0, 1, True), (3, 4, True), (4, 5, True), (5, 9, False), (5, 10, True),
    (10, 12, False), (95, 100, True), (None, 37, True),
])
def test_progress_is_logged_at_5_percent_steps_and_the_first_5(previous, percent, log):
    assert progress_to_log(previous, percent) is log


def test_stall_rules():
    assert moved(None, 0) and moved(10, 11) and not moved(10, 10)
    assert stalled_too_long(6 * 3600, 6 * 3600) and not stalled_too_long(100, 6 * 3600)
    assert not stalled_too_long(10**9, 0)  # 0 disables the limit


# --- monitor_download's poll state ------------------------------------------------------------------------------

_POLL_KEYS = ("stallCount", "connectionFailures", "lastBytes", "lastProgress", "lastLoggedPercent", "motionlessSince")


@pytest.mark.parametrize("payload", [
    {"requestId": "r", "jobId": "j", "downloadHistoryId": "d"},  # the first poll: no state yet
    {"requestId": "r", "jobId": "j", "stallCount": 3, "connectionFailures": 0, "lastBytes": 1024,
     "lastProgress": 0.25, "lastLoggedPercent": 25, "motionlessSince": "2026-03-10T12:00:05.123456",
     "pollDueAt": 1773144000.5},
    {"stallCount": 1, "connectionFailures": 2, "lastBytes": None, "lastProgress": None, "lastLoggedPercent": None,
     "motionlessSince": None},
    {"stallCount": 0, "connectionFailures": 0, "lastBytes": 0, "lastProgress": 0.0, "lastLoggedPercent": 0,
     "motionlessSince": "2026-03-10T12:00:00"},
], ids=["first poll", "a row written by earlier code", "a connection failure", "whole seconds"])
def test_poll_state_round_trips_through_a_payload_with_the_same_keys(payload):
    state_ = PollState.from_payload(payload)
    written = state_.to_payload()
    assert tuple(written) == _POLL_KEYS
    expected = {"stallCount": 0, "connectionFailures": 0, "lastBytes": None, "lastProgress": None,
                "lastLoggedPercent": None, "motionlessSince": None}
    expected.update({key: payload[key] for key in _POLL_KEYS if key in payload})
    assert written == expected
    assert PollState.from_payload({**payload, **written}) == state_


@pytest.mark.parametrize("base", [0.5, 1.0, 10.0, 2.0])
def test_reconnect_delay_doubles_from_the_poll_interval_up_to_thirty_of_them(base):
    assert [reconnect_delay(n, base) for n in range(1, 30)] == [base * min(2 ** (n - 1), 30) for n in range(1, 30)]
    assert reconnect_delay(1) == 10 and reconnect_delay(6) == 300


NOW = datetime(2026, 3, 10, 12, 0, 0)


@pytest.mark.parametrize("previous, downloaded, allowed, percent, expected", [
    # first poll, downloading: the clock starts now, progress is logged, polls come quickly
    (PollState(), 0, True, 0, (PollOutcome.POLL_AGAIN, 0, NOW, 10.0, True, False)),
    # moving: the clock restarts, the back-off resets
    (PollState(stall_count=3, last_bytes=10, last_logged_percent=1, motionless_since=NOW - timedelta(seconds=30)),
     20, True, 2, (PollOutcome.POLL_AGAIN, 0, NOW, 10.0, True, False)),
    # motionless, under the limit: the stretch goes on and polls back off
    (PollState(stall_count=1, last_bytes=10, last_logged_percent=7, motionless_since=NOW - timedelta(seconds=30)),
     10, True, 7, (PollOutcome.POLL_AGAIN, 2, NOW - timedelta(seconds=30), 40.0, False, False)),
    # motionless past the limit (60 s): stalled
    (PollState(stall_count=4, last_bytes=10, last_logged_percent=7, motionless_since=NOW - timedelta(seconds=60)),
     10, True, 7, (PollOutcome.STALLED, 5, NOW - timedelta(seconds=60), 300.0, False, False)),
    # held by the client (paused) right after moving: the clock is held, and that is said once
    (PollState(stall_count=0, last_bytes=10, last_logged_percent=7, motionless_since=NOW - timedelta(seconds=5)),
     10, False, 7, (PollOutcome.POLL_AGAIN, 1, None, 20.0, False, True)),
    # still held, a long time motionless: never stalled, not said again
    (PollState(stall_count=8, last_bytes=10, last_logged_percent=7, motionless_since=None),
     10, False, 7, (PollOutcome.POLL_AGAIN, 9, None, 300.0, False, False)),
    # held on the first poll: said
    (PollState(), 0, False, 0, (PollOutcome.POLL_AGAIN, 1, None, 20.0, True, True)),
])
def test_decide_poll(previous, downloaded, allowed, percent, expected):
    decision = decide_poll(previous, NOW, percent=percent, downloaded=downloaded, progress=percent / 100,
                           allowed=allowed, stall_limit_seconds=60, base_delay=10.0)
    assert (decision.outcome, decision.poll.stall_count, decision.poll.motionless_since, decision.delay,
            decision.log_progress, decision.clock_held) == expected
    assert decision.poll.connection_failures == 0 and decision.poll.last_bytes == downloaded
    assert decision.poll.last_logged_percent == (percent if decision.log_progress else previous.last_logged_percent)

"""A worker pool whose first poll batch to reach TEST_FREEZE_AT stops itself there with SIGSTOP
(tests/workers/test_poll_batches_fenced.py): `claim` (right after its claim: its rows are active with its tokens) or
`write` (its decisions made, right before its writes).

The frozen process's pid is written to Redis `test:froze`; once resumed (SIGCONT) it goes on with what it read
before, and writes `test:stale-done` (the batch's counts as JSON) when the batch returns. The download client is
the Redis-backed shared one (tests/fakes/shared_client.py).
"""
import json
import os
import signal
import sys

from app.integrations import torrent as torrent_module
from app.jobs import state
from app.jobs.queues import get_redis
from workers import poll_batch
from workers.__main__ import main

import jobtypes  # noqa: F401  (tests/ is on PYTHONPATH)
from fakes.shared_client import SharedDownloadClient

FREEZE_AT = os.environ.get("TEST_FREEZE_AT", "claim")
_real_claim = state.claim_polls
_real_write = poll_batch._write_plain
_real_poll_due = poll_batch.poll_due


def _freeze_here(point: str) -> None:
    if point == FREEZE_AT and get_redis().set("test:froze", os.getpid(), nx=True):
        os.kill(os.getpid(), signal.SIGSTOP)


def _claim_then_freeze(*args, **kwargs):
    claimed = _real_claim(*args, **kwargs)
    if claimed:
        _freeze_here("claim")
    return claimed


def _freeze_then_write(connection, plain):
    if plain:
        _freeze_here("write")
    return _real_write(connection, plain)


def _marking(*args, **kwargs):
    result = _real_poll_due(*args, **kwargs)
    if get_redis().get("test:froze") == str(os.getpid()).encode():
        get_redis().set("test:stale-done", json.dumps(result))
    return result


torrent_module.set_client_factory(lambda kind: SharedDownloadClient(get_redis()))
state.claim_polls = _claim_then_freeze
poll_batch._write_plain = _freeze_then_write
poll_batch.poll_due = _marking
sys.exit(main())

"""A worker pool whose first run to reach TEST_FREEZE_AT stops itself there with SIGSTOP
(tests/workers/test_fenced_downloads.py).

Points: `add` (download_torrent, right after the client took the torrent), `get`/`snapshot` (monitor_download,
right after the client answered), `organize` (organize_files, right after the files were copied). The frozen
process's pid is written to Redis `test:froze`; once resumed (SIGCONT) it goes on with what it read before, and
writes `test:stale-done` when its processor returns or raises. The download client is the Redis-backed
shared one (tests/fakes/shared_client.py).
"""
import os
import signal
import sys

from app.integrations import torrent as torrent_module
from app.jobs.queues import get_redis
from workers import processors
from workers.__main__ import main
from workers.processors import organize_files as organize_module

import jobtypes  # noqa: F401  (tests/ is on PYTHONPATH)
from fakes.shared_client import SharedDownloadClient

FREEZE_AT = set(os.environ.get("TEST_FREEZE_AT", "").split(","))


def freeze_here(point: str) -> None:
    if point in FREEZE_AT and get_redis().set("test:froze", os.getpid(), nx=True):
        os.kill(os.getpid(), signal.SIGSTOP)


def _marking(processor):
    def run(payload):
        try:
            return processor(payload)
        finally:
            if get_redis().get("test:froze") == str(os.getpid()).encode():
                get_redis().set("test:stale-done", 1)
    return run


def _organize_then_freeze(*args, **kwargs):
    result = _real_organize(*args, **kwargs)
    freeze_here("organize")
    return result


torrent_module.set_client_factory(lambda kind: SharedDownloadClient(get_redis(), before_return=freeze_here))
_real_organize = organize_module.organize
organize_module.organize = _organize_then_freeze
for _job_type in ("download_torrent", "monitor_download", "organize_files"):
    processors.replace(_job_type, _marking(processors.get(_job_type)))

sys.exit(main())

"""Functions the bare-RQ baselines enqueue (importable by path in worker processes)."""
import time


def bare_noop():
    return {"success": True}


def bare_stamp(key):
    from rq import get_current_job

    get_current_job().connection.rpush(key, repr(time.time()))

"""RQ's Redis key prefixes written out in code that cannot import RQ (the retention Lua script) are RQ's own,
and the recovery sweep builds RQ keys through RQ."""
from __future__ import annotations

from pathlib import Path

from rq.executions import ExecutionRegistry
from rq.job import Job as RQJob
from rq.results import get_key as result_key

from app.jobs import recovery, retention

# --- RQ's key prefixes ----------------------------------------------------------------------------------------

def test_rq_key_prefixes_written_out_in_the_retention_script_are_rqs():
    """app/jobs/retention.py's Lua deletes RQ's keys by prefix: an RQ upgrade that renames them fails here."""
    assert RQJob.redis_job_namespace_prefix == "rq:job:"
    assert RQJob.key_for("abc") == "rq:job:abc"
    assert result_key("abc") == "rq:results:abc"
    assert ExecutionRegistry.key_template.format("abc") == "rq:executions:abc"
    for prefix in ("'rq:job:' .. id", "'rq:results:' .. id", "'rq:executions:' .. id"):
        assert prefix in retention._TRIM


def test_recovery_builds_rq_keys_through_rq():
    source = Path(recovery.__file__).read_text()
    assert "rq:job:" not in source and "RQJob.key_for(" in source

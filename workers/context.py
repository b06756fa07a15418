"""What a processor may ask of, or hand back to, the runner."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rq import get_current_job


@dataclass
class Reschedule:
    """Returned by a polling processor: run this job again in `delay` seconds with `state` merged into its payload."""

    delay: float
    state: dict[str, Any] = field(default_factory=dict)


def is_last_attempt() -> bool:
    """Inside a processor: True when a failure now would be final (no retry left)."""
    rq_job = get_current_job()
    return rq_job is None or not rq_job.retries_left

"""The scheduler process of the Procfile: logging and the database, then the loop of
app/schedules/process.py (schedules, delayed jobs, sweeps, the reconciler, integration checks).
Run: `python scheduler.py` (see README).
"""
from __future__ import annotations

import sys

from app.config import get_settings
from app.db import ensure_bound
from app.logging_setup import configure_logging
from app.schedules.process import SchedulerProcess


def main() -> int:
    settings = get_settings()
    configure_logging(settings.log_level)
    ensure_bound()
    return SchedulerProcess().run()


if __name__ == "__main__":
    sys.exit(main())

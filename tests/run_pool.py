"""Entry point for worker subprocesses in tests: registers the test job types, then runs a pool."""
import sys

import jobtypes  # noqa: F401  (tests/ is on PYTHONPATH)
from workers.__main__ import main

sys.exit(main())

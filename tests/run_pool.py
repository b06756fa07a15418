"""Entry point for worker subprocesses in tests: registers the test job types, then runs a pool."""
import sys

from workers.__main__ import main

import jobtypes  # noqa: F401  (tests/ is on PYTHONPATH)

sys.exit(main())

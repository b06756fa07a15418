"""The base classes every layer may raise: `AppError`, the one base of the refusals services raise for a caller to
see (app/web/errors.py turns any of them into its answer: `{success: false, error, **details}` with `status` under
/api, the HTTP error page elsewhere), and `PermanentJobError`, a failure that retrying cannot help (a job's
callbacks skip its remaining attempts; the service clients' PermanentServiceError is one)."""
from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A refused operation. `status` is the HTTP status the API answers with (a subclass sets its default),
    `details` extra JSON fields of that answer (e.g. runningJobId, plexGuid, field)."""

    status: int = 400

    def __init__(self, message: str, status: int | None = None, **details: Any):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.details = details


class PermanentJobError(Exception):
    """Raised by a processor (or a service client it calls) when retrying cannot help (bad API key, missing
    config, bad data). The job fails at once; the remaining attempts are skipped (app/jobs/callbacks.py)."""

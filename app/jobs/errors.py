"""Errors of the job system."""
from __future__ import annotations


class JobSystemError(Exception):
    """Base class for job system errors."""


class UnknownJobType(JobSystemError, ValueError):
    """`add_job` was asked for a type that is not registered."""


class InvalidPayload(JobSystemError, ValueError):
    """A payload is not a JSON object or misses a required key."""


class EnqueueFailed(JobSystemError, RuntimeError):
    """The jobs row was written but Redis refused the job; the row is marked failed."""


class PermanentJobError(Exception):
    """Raised by a processor when retrying cannot help (bad API key, missing config, bad data).

    The job fails at once; the remaining attempts are skipped.
    """

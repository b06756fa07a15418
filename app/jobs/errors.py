"""Errors of the job system."""
from __future__ import annotations

from app.errors import AppError, PermanentJobError

__all__ = ["EnqueueFailed", "InvalidPayload", "JobSystemError", "PermanentJobError", "UnknownJobType"]


class JobSystemError(AppError):
    """Base class for job system errors: 409 for a caller (nothing started), EnqueueFailed 503."""

    status = 409


class UnknownJobType(JobSystemError, ValueError):
    """`add_job` was asked for a type that is not registered."""


class InvalidPayload(JobSystemError, ValueError):
    """A payload is not a JSON object or misses a required key."""


class EnqueueFailed(JobSystemError, RuntimeError):
    """The jobs row was written but Redis refused the job; the row is marked failed (503: try again)."""

    status = 503

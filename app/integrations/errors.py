"""Errors raised by the service clients."""
from __future__ import annotations

from app.errors import PermanentJobError


class ServiceError(Exception):
    """A call to an outside service failed. `transient` says whether retrying can help."""

    transient = True

    def __init__(self, service: str, message: str, status: int | None = None):
        super().__init__(f"{service}: {message}")
        self.service = service
        self.status = status


class TransientServiceError(ServiceError):
    """Unreachable, timed out, 5xx, 429: try again later."""


class PermanentServiceError(ServiceError, PermanentJobError):
    """Bad credentials, missing configuration, a refused request: retrying cannot help."""

    transient = False


def classify_status(service: str, status: int, what: str, setting_hint: str = "") -> ServiceError:
    if status in (401, 403):
        hint = f" (check {setting_hint})" if setting_hint else ""
        return PermanentServiceError(service, f"{what} was refused with HTTP {status}{hint}", status)
    if status == 429 or status >= 500:
        return TransientServiceError(service, f"{what} failed with HTTP {status}", status)
    return PermanentServiceError(service, f"{what} failed with HTTP {status}", status)

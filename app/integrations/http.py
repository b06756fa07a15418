"""Shared HTTP plumbing: a requests session with a timeout on every call and classified errors."""
from __future__ import annotations

from typing import Any

import requests

from app.integrations.errors import TransientServiceError

DEFAULT_TIMEOUT = 15.0


def request(session: requests.Session, service: str, method: str, url: str, *, timeout: float = DEFAULT_TIMEOUT,
            **kwargs: Any) -> requests.Response:
    """One HTTP call; connection problems and timeouts become TransientServiceError (URL not echoed:
    it may carry a key)."""
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout:
        raise TransientServiceError(service, f"{method} {_path(url)} timed out after {timeout:.0f} s") from None
    except requests.ConnectionError as exc:
        raise TransientServiceError(service, f"{method} {_path(url)}: cannot connect ({type(exc).__name__})") from None
    except requests.RequestException as exc:
        raise TransientServiceError(service, f"{method} {_path(url)} failed: {type(exc).__name__}") from None


def _path(url: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}"

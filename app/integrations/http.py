"""Shared HTTP plumbing: a requests session with a timeout on every call and classified errors."""
from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from app.integrations.errors import PermanentServiceError, TransientServiceError

DEFAULT_TIMEOUT = 15.0
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


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


def request_at_origin(session: requests.Session, service: str, setting: str, method: str, url: str,
                      **kwargs: Any) -> requests.Response:
    """One call to a service's API that carries its credential (X-Api-Key, X-Plex-Token): never follows a
    redirect, which would take the credential header to whatever host the redirect names (requests only
    drops `Authorization` across hosts). A redirect is a PermanentServiceError naming `setting` and the
    target's origin (never its path or query, which may carry a secret)."""
    response = request(session, service, method, url, allow_redirects=False, **kwargs)
    if response.status_code in REDIRECT_STATUSES:
        raise PermanentServiceError(service, f"{setting} redirects to {_origin(url, response.headers.get('Location'))};"
                                             f" set the final URL", response.status_code)
    return response


def _origin(url: str, location: str | None) -> str:
    parts = urlsplit(urljoin(url, location or ""))
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.netloc else "an unknown location"


def _path(url: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}"

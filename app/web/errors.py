"""The edge of the web app: bad input gets a clear error, never a 500.

- `text_problem` (app/validation.py) is the one check for text that reaches the database or a search.
- `BoundedJSONProvider`: request JSON nested deeper than MAX_JSON_DEPTH is a ValueError (so a 400), not a
  RecursionError deep inside the parser.
- `register`: error handlers. Under /api every error, whatever raised it (routing, CSRF, the body limit,
  a domain error, a crash), is `{"success": false, "error": "..."}` with its status; pages keep HTML.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, abort, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask_login import current_user
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    RequestEntityTooLarge,
    RequestURITooLarge,
    SecurityError,
    default_exceptions,
)

from app.errors import AppError

MAX_JSON_DEPTH = 32
# Longest path + query string the app answers; longer ones get a 414 from the app (JSON under /api). The
# web server's own limit on the request line is set above this (app/gunicorn_conf.py), so that its plain
# 414 page is only seen for lines it cannot read at all.
MAX_URL_LENGTH = 8000
UNAUTHORIZED_HINT = "Log in as admin or send Authorization: Bearer <ADMIN_API_TOKEN>"

def _nesting_exceeds(value: Any, limit: int) -> bool:
    """True when containers in `value` nest deeper than `limit` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing request bodies nested deeper than MAX_JSON_DEPTH (a ValueError, as for any
    malformed JSON, so `request.get_json` and `json_body` turn it into a 400)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        too_deep = f"JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels)"
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError(too_deep) from None
        if _nesting_exceeds(value, MAX_JSON_DEPTH):
            raise ValueError(too_deep)
        return value


def json_body() -> Any:
    """The request's JSON body; a 400 saying what is wrong when it is not JSON."""
    if not request.is_json:
        raise BadRequest("body must be JSON (Content-Type: application/json)")
    try:
        return current_app.json.loads(request.get_data())
    except ValueError as exc:  # malformed, not UTF-8, or nested too deeply
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def is_api_path(path: str) -> bool:
    """Whether a path is under /api, where every error is JSON (the web server's own refusals too)."""
    return path == "/api" or path.startswith("/api/")


def is_api_request() -> bool:
    return is_api_path(request.path)


def body_too_large_message(limit: int) -> str:
    return f"request body too large: at most {limit} bytes"


def refuse_anonymous_api_write() -> None:
    """An API write with neither a session nor a valid bearer token is 401, before CSRF is checked (a
    script without credentials should learn that it needs the token, not that a CSRF token is missing)."""
    if is_api_request() and not current_user.is_authenticated:
        abort(401)


def refuse_at_the_edge() -> None:
    """The first check of every request, before auth and CSRF: a Host header not in ALLOWED_HOSTS (400), a
    URL longer than MAX_URL_LENGTH (414), a Content-Length over MAX_CONTENT_LENGTH whatever the method (413:
    a DELETE's body is refused like a POST's, before anything is done; werkzeug checks a POST's only when
    its body is read, and a view that reads none never did)."""
    if isinstance(request.routing_exception, SecurityError):
        host = request.environ.get("HTTP_HOST", "")
        raise BadRequest(f"Host {host[:100]!r} is not in ALLOWED_HOSTS (see the README's configuration table)")
    environ = request.environ
    if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > MAX_URL_LENGTH:
        raise RequestURITooLarge(f"URL too long: at most {MAX_URL_LENGTH} characters of path and query")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()


def _http_message(exc: HTTPException) -> str:
    if isinstance(exc, RequestEntityTooLarge):
        return body_too_large_message(current_app.config["MAX_CONTENT_LENGTH"])
    if exc.code == 401:
        return "Unauthorized"
    if exc.description and exc.description != type(exc).description:
        return exc.description  # a reason given where it was raised (CSRF, json_body, abort(...))
    return exc.name


def _api_error(status: int, error: str, headers: list[tuple[str, str]] | None = None, **extra: Any):
    response = jsonify(success=False, error=error, **extra)
    response.status_code = status
    for name, value in headers or []:
        if name.lower() != "content-type":
            response.headers[name] = value  # Allow on a 405, WWW-Authenticate, Retry-After...
    return response


def _handle_http_exception(exc: HTTPException):
    if not is_api_request():
        return exc  # Flask's own HTML page (a crash is logged by Flask before it gets here)
    extra = {"message": UNAUTHORIZED_HINT} if exc.code == 401 else {}
    return _api_error(exc.code or 500, _http_message(exc), exc.get_headers(), **extra)


def _handle_app_error(exc: AppError):
    """A refusal from a service (an AppError: RequestError, ScheduleError, JobActionError, LogsQueryError,
    JobSystemError): its message and status, plus its `details` (e.g. runningJobId) as extra JSON fields."""
    if not is_api_request():
        return default_exceptions.get(exc.status, InternalServerError)(str(exc))
    return _api_error(exc.status, str(exc), **exc.details)


def register(flask_app: Flask) -> None:
    """Install the bounded JSON parser and the error handlers on the app."""
    flask_app.json = BoundedJSONProvider(flask_app)
    flask_app.register_error_handler(HTTPException, _handle_http_exception)
    flask_app.register_error_handler(AppError, _handle_app_error)

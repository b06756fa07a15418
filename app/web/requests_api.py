"""Requests API (admin): create, show, retry, cancel."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.audiobook_requests import service
from app.auth import api_admin_required
from app.jobs.errors import JobSystemError

bp = Blueprint("requests_api", __name__, url_prefix="/api/requests")


def _error(exc: Exception, status: int):
    return jsonify(success=False, error=str(exc)), status


@bp.post("")
@api_admin_required
def create():
    body = request.get_json(silent=True)
    try:
        created = service.create_request(body)
    except service.RequestError as exc:
        return _error(exc, exc.status)
    except JobSystemError as exc:
        return _error(exc, 503)
    return jsonify(success=True, request={"id": str(created.id), "status": created.status}), 201


@bp.get("/<request_id>")
@api_admin_required
def show(request_id: str):
    try:
        return jsonify(success=True, request=service.request_to_dict(service.get_request(request_id)))
    except service.RequestError as exc:
        return _error(exc, exc.status)


@bp.post("/<request_id>/retry")
@api_admin_required
def retry(request_id: str):
    try:
        job_id = service.retry_request(request_id)
    except service.RequestError as exc:
        return _error(exc, exc.status)
    except JobSystemError as exc:
        return _error(exc, 503)
    return jsonify(success=True, jobId=job_id)


@bp.post("/<request_id>/cancel")
@api_admin_required
def cancel(request_id: str):
    try:
        outcome = service.cancel_request(request_id)
    except service.RequestError as exc:
        return _error(exc, exc.status)
    return jsonify(success=True, **outcome)

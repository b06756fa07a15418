"""Requests API (admin): create, show, retry, cancel, delete (soft), remove kept torrents now, interactive
search and pick.

Refusals (RequestError with its status, JobSystemError) become `{success: false, error}` answers in
app/web/errors.py. Creating a request for a book the Plex library already has is a 409 carrying its
`plexGuid`; nothing is created.
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from app.audiobook_requests import deletion, interactive, service
from app.auth.guards import api_admin_required
from app.web.errors import json_body

bp = Blueprint("requests_api", __name__, url_prefix="/api/requests")


@bp.post("")
@api_admin_required
def create():
    created = service.create_request(json_body())
    return jsonify(success=True, request={"id": str(created.id), "status": created.status}), 201


@bp.get("/<request_id>")
@api_admin_required
def show(request_id: str):
    return jsonify(success=True, request=service.request_to_dict(service.get_request(request_id)))


@bp.post("/<request_id>/retry")
@api_admin_required
def retry(request_id: str):
    return jsonify(success=True, jobId=service.retry_request(request_id))


@bp.post("/<request_id>/cancel")
@api_admin_required
def cancel(request_id: str):
    return jsonify(success=True, **service.cancel_request(request_id))


@bp.delete("/<request_id>")
@api_admin_required
def delete(request_id: str):
    """Soft delete; 200 again (alreadyDeleted: true) for a deleted request, retrying what is left."""
    return jsonify(success=True, **deletion.delete_request(request_id))


@bp.post("/<request_id>/remove-seeding")
@api_admin_required
def remove_seeding(request_id: str):
    """The torrents kept seeding for a deleted, cancelled or swapped download: removed now, with their files."""
    return jsonify(success=True, **service.remove_seeding(request_id))


@bp.get("/<request_id>/releases")
@api_admin_required
def releases(request_id: str):
    return jsonify(success=True, releases=interactive.search_releases(request_id))


@bp.post("/<request_id>/releases")
@api_admin_required
def pick_release(request_id: str):
    job_id = interactive.pick_release(request_id, json_body())
    return jsonify(success=True, jobId=job_id), 202

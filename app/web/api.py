"""JSON API for admins."""
from __future__ import annotations

from flask import Blueprint, jsonify

from app.auth import api_admin_required
from app.jobs.service import get_job, job_to_dict

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/admin/job-status/<job_id>")
@api_admin_required
def job_status(job_id: str):
    job = get_job(job_id)
    if job is None:
        return jsonify(success=False, error="Job not found"), 404
    return jsonify(success=True, job=job_to_dict(job))

"""The release blocklist for admins: GET /api/blocklist, DELETE /api/blocklist/<id>, and the page
/admin/blocklist with a Remove button per entry (a POST form with CSRF). Writes go through
app/audiobook_requests/blocklist.py; a refusal (404) becomes its answer in app/web/errors.py."""
from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for

from app.audiobook_requests import blocklist
from app.auth.guards import api_admin_required, page_admin_required
from app.reports.blocklist import blocklist_page, entry_to_dict
from app.reports.pagination import PAGE_SIZES, PageError, pagination, parse_page

bp = Blueprint("blocklist", __name__)


@bp.get("/api/blocklist")
@api_admin_required
def api_list():
    """Entries newest first, `page` and `per_page` (25/50/100) like GET /api/admin/logs."""
    page, per_page = parse_page(request.args)  # PageError: 400
    entries, has_next = blocklist_page(page, per_page)
    return jsonify(success=True, entries=[entry_to_dict(e) for e in entries],
                   pagination=pagination(page, per_page, has_next))


@bp.delete("/api/blocklist/<entry_id>")
@api_admin_required
def api_remove(entry_id: str):
    entry = blocklist.remove_entry(entry_id)
    return jsonify(success=True, removed={"id": str(entry.id), "title": entry.title,
                                          "requestId": str(entry.request_id)})


@bp.get("/admin/blocklist")
@page_admin_required
def page():
    try:
        number, per_page = parse_page(request.args)
    except PageError as exc:
        flash(str(exc))
        number, per_page = 1, PAGE_SIZES[0]
    entries, has_next = blocklist_page(number, per_page)
    return render_template("admin/blocklist.html", entries=entries, page=number, per_page=per_page,
                           has_next=has_next)


@bp.post("/admin/blocklist/<entry_id>/remove")
@page_admin_required
def remove(entry_id: str):
    try:
        entry = blocklist.remove_entry(entry_id)
    except blocklist.BlocklistError:
        abort(404)
    flash(f"Removed '{entry.title}' from the blocklist: later searches may pick it again.")
    return redirect(url_for("blocklist.page"))

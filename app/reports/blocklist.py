"""The blocklist as the admin sees it (GET /api/blocklist, /admin/blocklist): every request's blocked
releases, newest first, with the request's book; one query a page."""
from __future__ import annotations

from typing import Any

from app.models import Audiobook, BlockedRelease, Request
from app.reports.pagination import fetch_page


def blocklist_page(page: int, per_page: int) -> tuple[list[BlockedRelease], bool]:
    """One page of entries (each with .request and .request.audiobook loaded), and whether more follow."""
    query = (BlockedRelease.select(BlockedRelease, Request, Audiobook).join(Request).join(Audiobook)
             .order_by(BlockedRelease.created_at.desc(), BlockedRelease.id.desc()))
    return fetch_page(query, page, per_page)


def entry_to_dict(entry: BlockedRelease) -> dict[str, Any]:
    request = entry.request
    return {"id": str(entry.id), "title": entry.title, "infoHash": entry.info_hash, "indexer": entry.indexer,
            "reason": entry.reason, "createdAt": entry.created_at.isoformat() + "Z",
            "request": {"id": str(request.id), "status": request.status, "bookTitle": request.audiobook.title,
                        "bookAuthor": request.audiobook.author}}

"""A request's release blocklist: the one module that writes blocked_releases.

A release lands here when it failed the request (a stalled or errored download, a download an admin swapped
for another release, an import that ended in `warn`); later searches, automatic and interactive, skip it.
An admin can take a release off again (the blocklist page, DELETE /api/blocklist/<id>).
"""
from __future__ import annotations

import uuid
from typing import Any

from app.errors import AppError
from app.jobs import fence
from app.jobs.logger import create_job_logger
from app.models import BlockedRelease, Job, utcnow
from app.pipeline.release_search import Blocklist
from app.validation import parse_uuid


def blocklist_for(request_id: Any) -> Blocklist:
    """The request's blocked releases, as the ranking reads them (titles and info hashes)."""
    return Blocklist.of(BlockedRelease.select(BlockedRelease.title, BlockedRelease.info_hash)
                        .where(BlockedRelease.request == request_id).tuples())


def block_release(request_id: Any, *, title: str, info_hash: str | None, indexer: str | None, reason: str) -> bool:
    """Blocklist a release for a request; False when it already was (the first reason stays), or when the job
    run that asks no longer holds its job: the insert is fenced in its own statement (app/jobs/fence.py), so a
    run resumed after its lease ran out never blocklists next to its successor."""
    now = utcnow()
    return fence.insert_if_holding(BlockedRelease, {
        "id": uuid.uuid4(), "created_at": now, "updated_at": now, "request": request_id, "title": title,
        "info_hash": info_hash or None, "indexer": indexer or None, "reason": reason}, ignore_conflict=True)


class BlocklistError(AppError):
    """A refused blocklist operation (404: no such entry)."""


EVENT_CONTEXT = "Blocklist"


def remove_entry(entry_id: str) -> BlockedRelease:
    """Take a release off its request's blocklist (an admin's Remove), so later searches may pick it again.
    An event on the request's timeline (its newest job) says who removed what. BlocklistError 404 for an
    unknown or malformed id, or an entry removed meanwhile."""
    canonical = parse_uuid(entry_id)
    entry = BlockedRelease.get_or_none(BlockedRelease.id == canonical) if canonical else None
    if entry is None or not BlockedRelease.delete().where(BlockedRelease.id == entry.id).execute():
        raise BlocklistError("blocklist entry not found", 404)
    newest = (Job.select(Job.id).where(Job.request == entry.request_id).order_by(Job.created_at.desc()).first())
    create_job_logger(newest.id if newest else None, EVENT_CONTEXT).info(
        f"An admin removed {entry.title!r} from the blocklist (blocked for: {entry.reason}); later searches "
        f"may pick it again",
        {"title": entry.title, "infoHash": entry.info_hash, "indexer": entry.indexer, "reason": entry.reason,
         "removedBy": "admin"})
    return entry

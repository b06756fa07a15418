"""A request's release blocklist: the one module that writes blocked_releases.

A release lands here when it failed the request (a stalled or errored download, a download an admin swapped
for another release, an import that ended in `warn`); later searches, automatic and interactive, skip it.
"""
from __future__ import annotations

from typing import Any

from app.models import BlockedRelease
from app.pipeline.release_search import Blocklist


def blocklist_for(request_id: Any) -> Blocklist:
    """The request's blocked releases, as the ranking reads them (titles and info hashes)."""
    return Blocklist.of(BlockedRelease.select(BlockedRelease.title, BlockedRelease.info_hash)
                        .where(BlockedRelease.request == request_id).tuples())


def block_release(request_id: Any, *, title: str, info_hash: str | None, indexer: str | None, reason: str) -> bool:
    """Blocklist a release for a request; False when it already was (the first reason stays)."""
    inserted = (BlockedRelease.insert(request=request_id, title=title, info_hash=(info_hash or None),
                                      indexer=indexer or None, reason=reason)
                .on_conflict_ignore().execute())
    return bool(inserted)

"""The plex_library table as one LibraryIndex per process, loaded in full and reloaded when the table changes.

Request creation's "already in the library" check and the scan jobs ask the same complete index (no row
cap, so "It" is found among 600 titles containing "it"). Building it costs a read of the whole table and a
title shape per row (about a second for 50,000 rows); each later call costs one aggregate query, the
fingerprint (row count, newest `updated_at`): every write to the table changes it, since scans set
`updated_at` on each row they insert or update and a removal lowers the count. A scan that commits while
the index loads leaves it with a stale fingerprint, so the next call loads again: never an old answer.
(It assumes the hosts that run scans keep their clocks in step: a scan on a host whose clock runs behind
the last writer's, renaming a row without adding or removing any, would go unseen until the next change.)
"""
from __future__ import annotations

import threading
from typing import Any

from peewee import fn

from app.library.matching import LibraryIndex, LibraryItem
from app.models import PlexLibrary

_lock = threading.Lock()
_cached: tuple[Any, LibraryIndex] | None = None


def library_index() -> LibraryIndex:
    """The whole plex_library table as a LibraryIndex (built again only when the table changed)."""
    global _cached
    with _lock:  # one load at a time; the other threads wait for it rather than load it again
        fingerprint = _fingerprint()
        if _cached is None or _cached[0] != fingerprint:
            _cached = (fingerprint, _load())
        return _cached[1]


def _fingerprint() -> tuple[Any, ...]:
    return tuple(PlexLibrary.select(fn.COUNT(PlexLibrary.id), fn.MAX(PlexLibrary.updated_at)).tuples().get())


def _load() -> LibraryIndex:
    return LibraryIndex(LibraryItem(guid, title, author or "", asin)
                        for guid, title, author, asin in PlexLibrary.select(
                            PlexLibrary.plex_guid, PlexLibrary.title, PlexLibrary.author, PlexLibrary.asin)
                        .tuples().iterator())

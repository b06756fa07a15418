"""What makes two requests ask for "the same book": the identity the requests API refuses twice.

A book with an ASIN is its ASIN (any case); one without is its normalised title and author (case, accents,
punctuation and spacing ignored, as `_same_book` in app/audiobook_requests/service.py compares them). The
key is stored on each request (requests.book_key) under a unique index over the active statuses
(migration 12), so two creates of one book at the same moment cannot both succeed. Changing this function
changes the keys: it then needs a migration that computes them again.
"""
from __future__ import annotations

import hashlib

from app.pipeline.ranking import normalize


def book_key(title: str, author: str, asin: str | None) -> str:
    """A fixed-length key (sha256 hex) of the book's identity."""
    identity = f"asin:{asin.strip().upper()}" if asin and asin.strip() else \
        f"title:{normalize(title)}\x1f{normalize(author)}"
    return hashlib.sha256(identity.encode()).hexdigest()

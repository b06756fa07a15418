"""Matching a requested book to a library item (pure).

An ASIN decides when both sides have one: the same ASIN matches, a different one never does. An empty
ASIN matches nothing (the original matched everything: every string contains ''). Otherwise a weighted
thefuzz score: 0.7 × title + 0.3 × the better of author and narrator, on normalised text, threshold 70,
and the title alone must score at least 80, so "Foundation" never matches "Foundation and Empire".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from thefuzz import fuzz

THRESHOLD = 70.0
TITLE_FLOOR = 80.0
_ASIN_IN_GUID = re.compile(r"(?:audible|audnexus)://([A-Z0-9]{10})", re.IGNORECASE)
_PARENTHETICAL = re.compile(
    r"\s*[\(\[](?:unabridged|abridged|full[ -]cast(?: edition)?|dramati[sz]ed|narrated by [^\)\]]*)[\)\]]",
    re.IGNORECASE)
_SUFFIX = re.compile(r"\s*(?::\s*a (?:novel|thriller|memoir)|[,:]?\s+book\s+\d+)\s*$", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")
STOP = {"the", "a", "an", "of", "and", "in", "on", "to", "for", "by"}


@dataclass(frozen=True)
class LibraryItem:
    guid: str
    title: str
    author: str = ""
    asin: str | None = None


@dataclass(frozen=True)
class BookQuery:
    title: str
    author: str
    narrator: str | None = None
    asin: str | None = None


@dataclass(frozen=True)
class Match:
    item: LibraryItem
    score: float
    reason: str


def normalize_title(title: str) -> str:
    text = _PARENTHETICAL.sub("", title.strip())
    text = _SUFFIX.sub("", text)
    return " ".join(_WORD.findall(text.lower()))


def item_asin(item: LibraryItem) -> str | None:
    if item.asin:
        return item.asin.upper()
    found = _ASIN_IN_GUID.search(item.guid or "")
    return found.group(1).upper() if found else None


def score(book: BookQuery, item: LibraryItem) -> tuple[float, float]:
    """(weighted score, title score), both 0-100."""
    title = float(fuzz.ratio(normalize_title(book.title), normalize_title(item.title)))
    people = [p for p in (book.author, book.narrator) if p]
    person = max((fuzz.token_sort_ratio(p.lower(), (item.author or "").lower()) for p in people), default=0)
    return 0.7 * title + 0.3 * person, title


def find_match(book: BookQuery, candidates: Iterable[LibraryItem]) -> Match | None:
    asin = (book.asin or "").strip().upper() or None
    best: Match | None = None
    for item in candidates:
        theirs = item_asin(item)
        if asin and theirs:
            if theirs == asin:
                return Match(item, 100.0, "asin")
            continue  # a different ASIN is there: never this book
        weighted, title = score(book, item)
        if weighted >= THRESHOLD and title >= TITLE_FLOOR and (best is None or weighted > best.score):
            best = Match(item, weighted, "fuzzy")
    return best


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(normalize_title(text)) if w not in STOP and len(w) > 1]


class LibraryIndex:
    """Candidates by shared title words (and ASIN), so matching N requests against a large library
    compares each request with a handful of items, not with all of them."""

    def __init__(self, items: Iterable[LibraryItem]):
        self.by_word: dict[str, list[LibraryItem]] = {}
        self.by_asin: dict[str, LibraryItem] = {}
        for item in items:
            asin = item_asin(item)
            if asin:
                self.by_asin[asin] = item
            for word in set(words(item.title)):
                self.by_word.setdefault(word, []).append(item)

    def candidates(self, book: BookQuery, limit: int = 50) -> list[LibraryItem]:
        found: dict[str, LibraryItem] = {}
        if book.asin and book.asin.upper() in self.by_asin:
            item = self.by_asin[book.asin.upper()]
            found[item.guid] = item
        title_words = sorted(set(words(book.title)), key=lambda w: len(self.by_word.get(w, ())))
        for word in title_words[:2]:  # the two rarest words of the title
            for item in self.by_word.get(word, [])[:limit]:
                found.setdefault(item.guid, item)
        return list(found.values())

    def match(self, book: BookQuery) -> Match | None:
        return find_match(book, self.candidates(book))

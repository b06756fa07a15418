"""Matching a requested book to a library item (pure).

An ASIN decides when both sides have one: the same ASIN matches, a different one never does. An empty
ASIN matches nothing (the original matched everything: every string contains ''). Otherwise a weighted
thefuzz score: 0.7 × title + 0.3 × the better of author and narrator, on normalised text, threshold 70,
and the title alone must score at least 80, so "Foundation" never matches "Foundation and Empire".
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz as rf_fuzz
from rapidfuzz import process
from thefuzz import fuzz

numpy: Any
try:  # cdist (both cores, 5x faster at 50k items) returns a numpy array (numpy is in install_requires;
    # without it, process.extract per request gives the same answers, slower)
    import numpy
except ImportError:  # pragma: no cover - depends on the environment
    numpy = None

THRESHOLD = 70.0
TITLE_FLOOR = 80.0
_ASIN_IN_GUID = re.compile(r"(?:audible|audnexus)://([A-Z0-9]{10})", re.IGNORECASE)
_PARENTHETICAL = re.compile(
    r"\s*[\(\[](?:unabridged|abridged|full[ -]cast(?: edition)?|dramati[sz]ed|narrated by [^\)\]]*)[\)\]]",
    re.IGNORECASE)
_SUFFIX = re.compile(r"\s*(?::\s*a (?:novel|thriller|memoir)|[,:]?\s+book\s+\d+)\s*$", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")


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


class LibraryIndex:
    """Every library item with its normalised title, searched in full for each request.

    Candidates are complete: every item whose title could pass TITLE_FLOOR, plus the item carrying the
    request's ASIN. No per-word cap, so a request is never missed because its title shares words with
    many other items (70 "Star Wars: Episode N" beside "Star Wars"). rapidfuzz's cdist compares the
    requests' titles with all titles at once (C, both cores), discarding pairs below the cutoff early.
    """

    def __init__(self, items: Iterable[LibraryItem]):
        self.items: list[LibraryItem] = list(items)
        self.titles: list[str] = [normalize_title(item.title) for item in self.items]
        self.by_asin: dict[str, LibraryItem] = {}
        for item in self.items:
            asin = item_asin(item)
            if asin:
                self.by_asin[asin] = item

    def candidates(self, book: BookQuery) -> list[LibraryItem]:
        """The ASIN's item (if any), then every item whose title ratio can reach TITLE_FLOOR."""
        return self.candidates_for([book])[0]

    def candidates_for(self, books: Sequence[BookQuery]) -> list[list[LibraryItem]]:
        found: list[list[LibraryItem]] = []
        for start in range(0, len(books), _CHUNK):
            chunk = books[start:start + _CHUNK]
            hits = _title_hits([normalize_title(book.title) for book in chunk], self.titles)
            for book, item_indexes in zip(chunk, hits, strict=True):
                asin_item = self.by_asin.get((book.asin or "").strip().upper()) if book.asin else None
                items = [self.items[i] for i in item_indexes]
                found.append(([asin_item] if asin_item is not None else []) + items)
        return found

    def match(self, book: BookQuery) -> Match | None:
        return find_match(book, self.candidates(book))

    def match_all(self, books: Sequence[BookQuery]) -> list[Match | None]:
        """find_match for each book, against the whole library (the same answer as all-pairs)."""
        return [find_match(book, candidates)
                for book, candidates in zip(books, self.candidates_for(books), strict=True)]


# thefuzz rounds rapidfuzz's ratio to an integer: 79.5 rounds to 80, so this cutoff keeps every item
# whose title can pass TITLE_FLOOR (find_match then scores the few candidates exactly).
_CANDIDATE_CUTOFF = TITLE_FLOOR - 0.5
_CHUNK = 128  # requests per cdist call: a 128 x 50,000 float32 matrix is 25 MB


def _title_hits(queries: list[str], titles: list[str]) -> list[list[int]]:
    """For each query, the indexes of the titles with ratio >= _CANDIDATE_CUTOFF, in library order."""
    if not queries or not titles:
        return [[] for _ in queries]
    if numpy is None:
        return [sorted(index for _, _, index in process.extract(
            query, titles, scorer=rf_fuzz.ratio, score_cutoff=_CANDIDATE_CUTOFF, limit=None)) for query in queries]
    scores = process.cdist(queries, titles, scorer=rf_fuzz.ratio, score_cutoff=_CANDIDATE_CUTOFF, workers=-1)
    hits: list[list[int]] = [[] for _ in queries]
    rows, columns = numpy.nonzero(scores)  # below the cutoff cdist writes 0
    for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
        hits[row].append(column)
    return hits

"""Matching a requested book to a library item (pure).

An ASIN decides when both sides have one: the same ASIN matches, a different one never does. An empty
ASIN matches nothing (the original matched everything: every string contains ''). Otherwise a weighted
thefuzz score: 0.7 × title + 0.3 × the better of author and narrator, threshold 70, and the title alone
must score at least 80.

The title score is the best ratio between a form of one title and a form of the other (app/library/titles:
the whole title, the title without its series/edition decoration, and the forms that count only when the
other side names the series), counted only when the two forms have the same words (a word may differ by a
typo, never by another word). So "The Name of the Wind" is "The Name of the Wind: The Kingkiller Chronicle,
Book 1" (either way round), while "Children of Time" is not "Children of Ruin: Children of Time, Book 2"
(ruin is not time, though the strings score 81), nor "Foundation" "Foundation and Empire".
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz as rf_fuzz
from rapidfuzz import process
from thefuzz import fuzz

from app.library.titles import TitleShape, same_series, title_shape

numpy: Any
try:  # cdist (both cores, 5x faster at 50k items) returns a numpy array (numpy is in install_requires;
    # without it, process.extract per request gives the same answers, slower)
    import numpy
except ImportError:  # pragma: no cover - depends on the environment
    numpy = None

THRESHOLD = 70.0
TITLE_FLOOR = 80.0
WORD_FLOOR = 80.0  # two words of at least WORD_MIN_TYPO letters this close are one word with a typo
WORD_MIN_TYPO = 5
_ASIN_IN_GUID = re.compile(r"(?:audible|audnexus)://([A-Z0-9]{10})", re.IGNORECASE)
_NAME_PART = re.compile(r"[^\W_]+")
_ARTICLES = frozenset({"the", "a", "an"})


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


def normalize_person(name: str) -> str:
    """Lower-case name parts, initials run together: "James S.A. Corey", "James S. A. Corey" and "james sa
    corey" are all "james sa corey"."""
    merged: list[str] = []
    in_initials = False
    for part in _NAME_PART.findall(name.casefold()):
        if len(part) == 1 and in_initials:
            merged[-1] += part
        else:
            merged.append(part)
            in_initials = len(part) == 1
    return " ".join(merged)


def person_score(wanted: str, held: str) -> float:
    return float(fuzz.token_sort_ratio(normalize_person(wanted), normalize_person(held)))


def same_words(first: str, second: str) -> bool:
    """The same words in the same order, a long word allowed a typo ("colour"/"color"), nothing else; a
    leading article and the spaces inside a word ("spider man"/"spiderman") do not count."""
    ours, theirs = _without_article(first.split()), _without_article(second.split())
    if not ours or not theirs:
        return False
    if "".join(ours) == "".join(theirs):
        return True
    return len(ours) == len(theirs) and all(
        a == b or (min(len(a), len(b)) >= WORD_MIN_TYPO and rf_fuzz.ratio(a, b) >= WORD_FLOOR)
        for a, b in zip(ours, theirs, strict=True))


def _without_article(words: list[str]) -> list[str]:
    return words[1:] if len(words) > 1 and words[0] in _ARTICLES else words


def title_score(wanted: TitleShape, held: TitleShape) -> float:
    """The best thefuzz ratio between a form of each title that have the same words; 0 when none has, or
    when both name their place in a series and no place is the same."""
    if wanted.positions and held.positions and not set(wanted.positions) & set(held.positions):
        return 0.0
    best = 0.0
    for ours in wanted.forms:
        if ours.needs_series and not same_series(ours.needs_series, held.series):
            continue
        for theirs in held.forms:
            if theirs.needs_series and not same_series(theirs.needs_series, wanted.series):
                continue
            if same_words(ours.text, theirs.text):
                best = max(best, float(fuzz.ratio(ours.text, theirs.text)))
    return best


def item_asin(item: LibraryItem) -> str | None:
    if item.asin:
        return item.asin.upper()
    found = _ASIN_IN_GUID.search(item.guid or "")
    return found.group(1).upper() if found else None


def score(book: BookQuery, item: LibraryItem) -> tuple[float, float]:
    """(weighted score, title score), both 0-100."""
    title = title_score(title_shape(book.title), title_shape(item.title))
    people = [p for p in (book.author, book.narrator) if p]
    person = max((person_score(p, item.author or "") for p in people), default=0.0)
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
    """Every library item with the forms of its title, searched in full for each request.

    Candidates are complete: every item with a title form whose ratio to a form of the request's title
    could pass TITLE_FLOOR (title_score never counts a pair below it), plus the item carrying the request's
    ASIN. No per-word cap, so a request is never missed because its title shares words with many other
    items (70 "Star Wars: Episode N" beside "Star Wars"). rapidfuzz's cdist compares the requests' forms
    with all forms at once (C, both cores), discarding pairs below the cutoff early.
    """

    def __init__(self, items: Iterable[LibraryItem]):
        self.items: list[LibraryItem] = list(items)
        self.forms: list[str] = []
        self.form_items: list[int] = []  # the item each form belongs to
        self.by_asin: dict[str, LibraryItem] = {}
        for index, item in enumerate(self.items):
            for form in title_shape(item.title).forms:
                self.forms.append(form.text)
                self.form_items.append(index)
            asin = item_asin(item)
            if asin:
                self.by_asin[asin] = item

    def candidates(self, book: BookQuery) -> list[LibraryItem]:
        """The ASIN's item (if any), then every item whose title score can reach TITLE_FLOOR, in library order."""
        return self.candidates_for([book])[0]

    def candidates_for(self, books: Sequence[BookQuery]) -> list[list[LibraryItem]]:
        queries: list[str] = []
        query_books: list[int] = []
        for number, book in enumerate(books):
            for form in title_shape(book.title).forms:
                queries.append(form.text)
                query_books.append(number)
        item_indexes: list[set[int]] = [set() for _ in books]
        for start in range(0, len(queries), _CHUNK):
            hits = _title_hits(queries[start:start + _CHUNK], self.forms)
            for number, form_indexes in zip(query_books[start:start + _CHUNK], hits, strict=True):
                item_indexes[number].update(self.form_items[i] for i in form_indexes)
        found: list[list[LibraryItem]] = []
        for book, indexes in zip(books, item_indexes, strict=True):
            asin_item = self.by_asin.get((book.asin or "").strip().upper()) if book.asin else None
            found.append(([asin_item] if asin_item is not None else []) + [self.items[i] for i in sorted(indexes)])
        return found

    def match(self, book: BookQuery) -> Match | None:
        return find_match(book, self.candidates(book))

    def match_all(self, books: Sequence[BookQuery]) -> list[Match | None]:
        """find_match for each book, against the whole library (the same answer as all-pairs)."""
        return [find_match(book, candidates)
                for book, candidates in zip(books, self.candidates_for(books), strict=True)]


# thefuzz rounds rapidfuzz's ratio to an integer: 79.5 rounds to 80, so this cutoff keeps every form
# whose ratio can pass TITLE_FLOOR (find_match then scores the few candidates exactly).
_CANDIDATE_CUTOFF = TITLE_FLOOR - 0.5
_CHUNK = 128  # title forms per cdist call: a 128 x 50,000 float32 matrix is 25 MB


def _title_hits(queries: list[str], titles: list[str]) -> list[list[int]]:
    """For each query, the indexes of the titles with ratio >= _CANDIDATE_CUTOFF."""
    if not queries or not titles:
        return [[] for _ in queries]
    if numpy is None:
        return [[index for _, _, index in process.extract(
            query, titles, scorer=rf_fuzz.ratio, score_cutoff=_CANDIDATE_CUTOFF, limit=None)] for query in queries]
    scores = process.cdist(queries, titles, scorer=rf_fuzz.ratio, score_cutoff=_CANDIDATE_CUTOFF, workers=-1)
    hits: list[list[int]] = [[] for _ in queries]
    rows, columns = numpy.nonzero(scores)  # below the cutoff cdist writes 0
    for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
        hits[row].append(column)
    return hits

"""What a Prowlarr search offers for a request, and the download_torrent payload (pure: no I/O).

Shared by the search_indexers worker (automatic pick: the best acceptable release and its alternates) and
the interactive search API (every result, ranked, each with why it would not be picked automatically).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.pipeline.ranking import Ranked, Release, acceptable, normalize, rank_releases
from app.redaction import redact_text
from app.validation import INT4_MAX, INT8_MAX, out_of_range, too_long

MAX_ALTERNATES = 10
BLOCKLISTED = "blocklisted"
NO_SEEDERS = "no seeders"


@dataclass(frozen=True)
class Blocklist:
    """A request's blocked releases: by normalised title (what the stall rule records) or by info hash."""

    titles: frozenset[str] = frozenset()
    hashes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, rows: Iterable[tuple[str | None, str | None]]) -> Blocklist:
        """From (title, info_hash) pairs, e.g. blocked_releases rows."""
        titles, hashes = set(), set()
        for title, info_hash in rows:
            if title:
                titles.add(normalize(title))
            if info_hash:
                hashes.add(info_hash.lower())
        return cls(frozenset(titles), frozenset(hashes))

    def blocks(self, release: Release) -> bool:
        if normalize(release.title) in self.titles:
            return True
        return release.info_hash is not None and release.info_hash.lower() in self.hashes


def storage_problem(release: Release) -> str | None:
    """Why a release cannot be recorded as a download (download_history: indexer varchar, seeders and
    leechers integer, size bigint); None when it can. The search skips such a result instead of failing."""
    return (too_long("indexer name", release.indexer) or out_of_range("seeders", release.seeders, INT4_MAX)
            or out_of_range("leechers", release.leechers, INT4_MAX) or out_of_range("size", release.size, INT8_MAX))


def storable(releases: Iterable[Release]) -> tuple[list[Release], list[tuple[Release, str]]]:
    """(the releases that can be stored, the others with why not)."""
    kept: list[Release] = []
    skipped: list[tuple[Release, str]] = []
    for release in releases:
        problem = storage_problem(release)
        if problem is None:
            kept.append(release)
        else:
            skipped.append((release, problem))
    return kept, skipped


def has_seeders(release: Release) -> bool:
    """Usenet results carry no seeder count; a torrent without seeders cannot download."""
    return release.protocol != "torrent" or (release.seeders or 0) > 0


@dataclass(frozen=True)
class AutomaticSearch:
    """The automatic search's view: seedless and blocklisted results dropped, the rest ranked, best first."""

    ranked: list[Ranked]
    seeded: int       # results with seeders
    blocked: int      # of those, blocklisted

    @property
    def usable(self) -> list[Ranked]:
        return acceptable(self.ranked)


def automatic_search(releases: list[Release], blocklist: Blocklist, title: str, author: str) -> AutomaticSearch:
    seeded = [r for r in releases if has_seeders(r)]
    allowed = [r for r in seeded if not blocklist.blocks(r)]
    return AutomaticSearch(rank_releases(allowed, title, author), len(seeded), len(seeded) - len(allowed))


def rank_all(releases: list[Release], blocklist: Blocklist, title: str, author: str) -> list[Ranked]:
    """Every result ranked, best first (interactive search). `rejected` says why the automatic search would
    not take it: "blocklisted" first, then "no seeders", then the ranking's own gate."""
    ranked = rank_releases(releases, title, author)
    for item in ranked:
        if blocklist.blocks(item.release):
            item.rejected = BLOCKLISTED
        elif not has_seeders(item.release):
            item.rejected = NO_SEEDERS
    return ranked


def release_key(release: Release) -> str:
    """How a client names a release it picks: Prowlarr's guid, else its link, else its title; redacted, as
    it is shown (a tracker's guid or link may carry the passkey)."""
    return redact_text(release.guid or release.download_url or release.magnet_url or release.title)


def release_row(item: Ranked) -> dict[str, Any]:
    """One result as the interactive search API shows it."""
    release = item.release
    breakdown = {name: round(item.breakdown.get(name, 0.0), 1) for name in ("format", "seeders", "size", "match")}
    return {"guid": release_key(release), "title": release.title, "indexer": release.indexer, "size": release.size,
            "seeders": release.seeders, "score": round(item.score, 1), "breakdown": breakdown,
            "rejected": item.rejected}


def download_payload(request_id: str, book: dict[str, Any], best: Release, alternates: Iterable[Release] = (),
                     **extra: Any) -> dict[str, Any]:
    """download_torrent's payload, as search_indexers has always built it (plus `extra` markers)."""
    return {"requestId": request_id, "audiobook": book, "torrent": best.to_payload(),
            "alternateTorrents": [r.to_payload() for r in alternates], **extra}


def book_of(audiobook: Any) -> dict[str, Any]:
    """The `audiobook` part of search and download payloads, from an Audiobook row."""
    return {"id": str(audiobook.id), "title": audiobook.title, "author": audiobook.author,
            "asin": audiobook.audible_asin}

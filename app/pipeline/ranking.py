"""Ranking of Prowlarr releases for an audiobook (the original's HEAD rules with their gates).

Every result is ranked before anything is cut (the original cut to 50 first, #277). Automatic
selection keeps results that pass the gates: size >= 20 MiB, >= 80 % of the title's significant words
present, the author present, and a score >= 50.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

MIN_SIZE_BYTES = 20 * 1024 * 1024
MIN_SCORE = 50.0
STOP_WORDS = {"the", "a", "an", "of", "on", "in", "at", "by", "for", "and"}
FORMAT_SCORES = {"M4B": 10.0, "FLAC": 7.0, "M4A": 6.0, "MP3": 4.0}


@dataclass(frozen=True)
class Release:
    title: str
    size: int
    seeders: int | None
    indexer: str = ""
    indexer_id: int | None = None
    download_url: str | None = None
    magnet_url: str | None = None
    info_hash: str | None = None
    guid: str = ""
    publish_date: str = ""
    protocol: str = "torrent"
    leechers: int | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"title": self.title, "size": self.size, "seeders": self.seeders, "leechers": self.leechers,
                "indexer": self.indexer, "indexerId": self.indexer_id, "downloadUrl": self.download_url,
                "magnetUrl": self.magnet_url, "infoHash": self.info_hash, "guid": self.guid,
                "publishDate": self.publish_date, "protocol": self.protocol}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Release:
        return cls(title=str(data.get("title", "")), size=int(data.get("size") or 0), seeders=data.get("seeders"),
                   leechers=data.get("leechers"), indexer=str(data.get("indexer") or ""),
                   indexer_id=data.get("indexerId"), download_url=data.get("downloadUrl"),
                   magnet_url=data.get("magnetUrl"), info_hash=data.get("infoHash"), guid=str(data.get("guid") or ""),
                   publish_date=str(data.get("publishDate") or ""), protocol=str(data.get("protocol") or "torrent"))


@dataclass
class Ranked:
    release: Release
    score: float
    breakdown: dict[str, float]
    notes: list[str] = field(default_factory=list)
    rejected: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"title": self.release.title, "indexer": self.release.indexer, "seeders": self.release.seeders,
                "size": self.release.size, "score": round(self.score, 1),
                "breakdown": {k: round(v, 1) for k, v in self.breakdown.items()}, "notes": self.notes,
                "rejected": self.rejected}


def dice(a: str, b: str) -> float:
    """Sørensen–Dice over character bigrams, whitespace removed (npm string-similarity semantics)."""
    a, b = re.sub(r"\s+", "", a), re.sub(r"\s+", "", b)
    if a == b:
        return 1.0
    if len(a) < 2 or len(b) < 2:
        return 0.0
    bigrams: dict[str, int] = {}
    for i in range(len(a) - 1):
        bigrams[a[i:i + 2]] = bigrams.get(a[i:i + 2], 0) + 1
    hits = 0
    for i in range(len(b) - 1):
        pair = b[i:i + 2]
        if bigrams.get(pair, 0) > 0:
            bigrams[pair] -= 1
            hits += 1
    return 2.0 * hits / (len(a) + len(b) - 2)


def normalize(text: str) -> str:
    """Split CamelCase, lower-case, strip diacritics, punctuation → spaces (apostrophes dropped)."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    text = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("'", "").replace("’", "")
    return " ".join(re.sub(r"[^\w]+|_", " ", text).split())


def required_title_words(title: str) -> list[str]:
    core = re.sub(r"[\(\[\{][^\)\]\}]*[\)\]\}]", " ", title).split(":", 1)[0]
    return [w for w in normalize(core).split() if w not in STOP_WORDS]


def authors_of(author: str) -> list[str]:
    parts = re.split(r",|&| and | - ", author)
    return [normalize(p) for p in parts if len(normalize(p)) > 2 and normalize(p) not in ("translator", "narrator")]


def detect_format(title: str) -> str | None:
    upper = title.upper()
    for name in ("M4B", "FLAC", "M4A", "MP3"):
        if re.search(rf"(?<![A-Z0-9]){name}(?![A-Z0-9])", upper):
            return name
    return None


def _author_present(authors: list[str], torrent: str) -> bool:
    for author in authors:
        if author in torrent or dice(author, torrent) >= 0.85:
            return True
        tokens = author.split()
        if len(tokens) >= 2:
            first, last = tokens[0], tokens[-1]
            words = torrent.split()
            if first in words and last in words and abs(torrent.find(first) - torrent.find(last)) <= 30:
                return True
    return False


def match_score(title: str, author: str, torrent_title: str) -> tuple[float, str | None]:
    """0-60 and the gate that rejected the release (None when it passed)."""
    torrent = normalize(torrent_title)
    tokens = set(torrent.split())
    words = required_title_words(title)
    if words:
        coverage = sum(1 for w in words if w in tokens) / len(words)
        if coverage < 0.8:
            return 0.0, f"title words missing ({coverage:.0%} of {len(words)} present)"
    authors = authors_of(author)
    if authors and not _author_present(authors, torrent):
        return 0.0, "author not in the release title"
    full, core = normalize(title), " ".join(required_title_words(title))
    if (full and full in torrent) or (core and core in torrent):
        title_points = 45.0
    else:
        title_points = 45.0 * max(dice(full, torrent), dice(core, torrent) if core else 0.0)
    if authors:
        present = sum(1 for a in authors if a in torrent) / len(authors)
        author_points = 15.0 * present if present else 15.0 * dice(" ".join(authors), torrent)
    else:
        author_points = 0.0
    return min(60.0, title_points + author_points), None


def rank_release(release: Release, title: str, author: str) -> Ranked:
    notes: list[str] = []
    fmt = detect_format(release.title)
    format_points = FORMAT_SCORES.get(fmt or "", 1.0)
    notes.append(f"format {fmt or 'unknown'}")
    if release.seeders is None:
        seeder_points = 15.0 if release.protocol == "usenet" else 0.0
    else:
        seeder_points = 0.0 if release.seeders <= 0 else min(15.0, 6.0 * math.log10(release.seeders + 1))
    # Without a runtime (no Audnexus here) size cannot be judged beyond the ebook/sample gate.
    size_points = 15.0 if release.size >= MIN_SIZE_BYTES else 0.0
    match_points, rejected = match_score(title, author, release.title)
    if release.size < MIN_SIZE_BYTES:
        rejected = rejected or f"too small ({release.size / 1048576:.1f} MiB < 20 MiB)"
    score = format_points + seeder_points + size_points + match_points
    if rejected is None and score < MIN_SCORE:
        rejected = f"score {score:.1f} below {MIN_SCORE:.0f}"
    breakdown = {"format": format_points, "seeders": seeder_points, "size": size_points, "match": match_points,
                 "total": score}
    return Ranked(release, score, breakdown, notes, rejected)


def rank_releases(releases: list[Release], title: str, author: str) -> list[Ranked]:
    """All releases ranked, best first (stable: ties keep the indexer's order, then newest first)."""
    ranked = [rank_release(r, title, author) for r in releases]
    ranked.sort(key=lambda r: r.release.publish_date, reverse=True)
    ranked.sort(key=lambda r: r.score, reverse=True)
    return ranked


def acceptable(ranked: list[Ranked]) -> list[Ranked]:
    return [r for r in ranked if r.rejected is None]

"""Library scan + match at size: a 50,000-item fake Plex library (a quarter of the titles carry their series,
"Title: Series Saga, Book N") and 1,000 downloaded requests for books by their own title.

Full path: scan_plex's own functions (paged Plex reads over HTTP, batched upserts into PostgreSQL,
then matching every downloaded request against every library title: rapidfuzz cdist with a score cutoff, so
no candidate is ever left out). Baseline, same run: naive all-pairs
thefuzz (each request scored against every library item), timed on a sample of requests and scaled
to all of them (running it in full would take minutes). Peak memory: growth of the process's peak RSS
during scan + match (the fake Plex server runs in the same process, so its pages count too).

Then the "already in the library" check of request creation (library_match, the 409 of POST
/api/requests) against the same table: the first call (it loads the index) and the median of the next ones.

    python bench/scan.py [--items 50000] [--requests 1000] [--baseline-sample 10] [--quick]
"""
from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from pathlib import Path

from common import parse_args, quiet_logs, require_figures, reset, setup

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

# what the output must hold (tests/bench/test_bench_quick.py checks it)
FIGURES = ("full path: scan", "naive all-pairs thefuzz", "matching speed-up vs naive",
           "request creation's library check: first")


def library(n: int, plex) -> list[dict]:
    rng = random.Random(7)
    words = ["shadow", "kings", "empire", "night", "river", "storm", "silent", "garden", "winter", "crown", "glass",
             "iron", "ember", "tide", "hollow", "star", "wolf", "raven", "fire", "stone", "dream", "ash", "sea"]
    first_names = ["Anna", "Ben", "Cara", "Dev", "Eli", "Fay"]
    last_names = ["Stone", "Reed", "Hale", "Voss"]
    authors = [f"{rng.choice(first_names)} {rng.choice(last_names)}{i}" for i in range(2000)]
    titles = [" ".join(rng.sample(words, rng.randint(2, 4))).title() + f" {i}" for i in range(n)]
    # a quarter carry their series, as Audible-style tags do ("Title: Series Saga, Book N")
    return [plex.album(title + (f": {title.split()[0]} Saga, Book {i % 7 + 1}" if i % 4 == 0 else ""),
                       rng.choice(authors)) for i, title in enumerate(titles)]


def own_title(item: dict) -> str:
    """The book's title without the series decoration library() gave a quarter of the items."""
    return item["title"].split(": ")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--baseline-sample", type=int, default=10)
    args = parse_args(parser, {"items": 2000, "requests": 50, "baseline_sample": 2})
    from fakes.plex import FakePlex

    plex = FakePlex().start()
    setup(PLEX_URL=plex.url, PLEX_TOKEN=plex.token, PLEX_LIBRARY_ID=plex.section)
    quiet_logs()
    from thefuzz import fuzz

    from app.db import database
    from app.integrations.plex import PlexClient
    from app.jobs.logger import create_job_logger
    from app.library.titles import normalize_title
    from app.models import Audiobook, PlexLibrary, Request
    from workers.processors.scan_plex import _upsert, match_downloaded

    reset()
    database.obj.execute_sql("TRUNCATE plex_library, requests, audiobooks CASCADE")
    plex.items = library(args.items, plex)
    rng = random.Random(11)
    picks = rng.sample(plex.items, args.requests)
    books = []
    for i, item in enumerate(picks):
        title = own_title(item) + (" (Unabridged)" if i % 3 == 0 else "")
        if i % 10 == 0:
            title = "Not In The Library " + str(i)  # some requests have no match
        books.append(Audiobook.create(title=title, author=item["parentTitle"]))
    for book in books:
        Request.create(audiobook=book, status="downloaded")
    log = create_job_logger(None, "Bench")

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    seen = _upsert(PlexClient(plex.url, plex.token).albums(plex.section), plex.section,
                   log)
    scanned = time.perf_counter()
    matched = match_downloaded(log)
    finished = time.perf_counter()
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024  # growth of peak RSS

    rows = [(r.title, r.author or "") for r in PlexLibrary.select(PlexLibrary.title, PlexLibrary.author)]
    naive_started = time.perf_counter()
    for book in books[: args.baseline_sample]:
        wanted = normalize_title(book.title)
        max((0.7 * fuzz.ratio(wanted, normalize_title(t)) + 0.3 * fuzz.token_sort_ratio(book.author.lower(), a.lower()))
            for t, a in rows)
    naive_per_request = (time.perf_counter() - naive_started) / args.baseline_sample
    plex.stop()
    first_check, later_checks, missed_checks = time_library_checks(picks[:51])

    match_seconds = finished - scanned
    print(f"library {len(seen)} items, {args.requests} downloaded requests, {len(matched)} matched")
    print(f"full path: scan {scanned - started:.2f} s + match {match_seconds:.2f} s = {finished - started:.2f} s, "
          f"peak {peak / 2**20:.0f} MiB   (goal <= 10 s, <= 200 MB)")
    print(f"naive all-pairs thefuzz: {naive_per_request * 1000:.0f} ms per request → "
          f"{naive_per_request * args.requests:.0f} s for {args.requests} (sampled {args.baseline_sample})")
    print(f"matching speed-up vs naive: {naive_per_request * args.requests / match_seconds:.0f}x")
    print(f"request creation's library check: first {first_check * 1000:.0f} ms, then median "
          f"{statistics.median(later_checks) * 1000:.1f} ms ({len(later_checks) + 1} checks, {missed_checks} missed)")
    require_figures({"scan": scanned - started, "match": match_seconds, "naive per request": naive_per_request,
                     "library check": statistics.median(later_checks)})
    if len(seen) != args.items or not matched:
        raise SystemExit(f"bench broken: {len(seen)} of {args.items} items scanned, {len(matched)} requests matched")


def time_library_checks(items: list[dict]) -> tuple[float, list[float], int]:
    """Seconds of library_match for each item's title and author (all of them are in the library), and how
    many it missed."""
    from app.audiobook_requests.service import library_match

    try:  # the first check in a fresh web process loads the index: start from nothing
        from app.library import plex_index, titles
        plex_index._cached = None
        titles.title_shape.cache_clear()
    except ImportError:  # the code before the per-process index
        pass
    seconds, missed = [], 0
    for item in items:
        started = time.perf_counter()
        found = library_match({"title": own_title(item), "author": item["parentTitle"], "narrator": None,
                               "asin": None})
        seconds.append(time.perf_counter() - started)
        missed += found is None
    return seconds[0], seconds[1:], missed


if __name__ == "__main__":
    main()

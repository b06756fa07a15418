"""The logs page on a long history: 100,000 jobs and 1,000,000 events in PostgreSQL.

Server time (Flask, in process) of: the first page, a filtered page (status), a text search over event
messages, titles and errors, and a deep page. Baseline, same run: the same first page rendered from a
table of only 1,000 jobs, so the ratio shows what the long history costs.

    python bench/logs_page.py [--jobs 100000] [--events 1000000] [--repeat 30] [--quick]
"""
from __future__ import annotations

import argparse
import re
import time

from common import parse_args, percentile, quiet_logs, require_figures, setup

# what the output must hold (tests/bench/test_bench_quick.py checks it)
FIGURES = ("baseline (1,000 jobs) first page", "first page", "filtered (status=failed)", "text search (q=refused)",
           "text search in events", "deep page")
PER_PAGE = 25  # the logs page's default (app/reports/logs.py)

SEED = """
INSERT INTO audiobooks (id, created_at, updated_at, title, author, status)
SELECT md5('book' || g)::uuid, now(), now(),
       'Book ' || g || ' ' || (ARRAY['shadow','kings','empire','river'])[1 + g % 4],
       'Author ' || (g % 500), 'requested'
FROM generate_series(1, {books}) g;
INSERT INTO requests (id, created_at, updated_at, user_id, audiobook_id, status, progress, priority, search_attempts,
                      download_attempts, import_attempts, max_import_retries, fruitless_searches)
SELECT md5('req' || g)::uuid, now(), now(), 'admin', md5('book' || g)::uuid, 'available', 100, 10, 1, 0, 0, 5, 0
FROM generate_series(1, {books}) g;
INSERT INTO jobs (id, created_at, updated_at, request_id, rq_job_id, type, status, priority, attempts, max_attempts,
                  payload, error_message, started_at, completed_at, polls, polling)
SELECT md5('job' || g)::uuid, now() - (g || ' seconds')::interval, now(),
       CASE WHEN g % 3 = 0 THEN md5('req' || (1 + g % {books}))::uuid END, 'job-' || md5('job' || g)::uuid,
       (ARRAY['search_indexers','download_torrent','monitor_download','organize_files','scan_plex'])[1 + g % 5],
       CASE WHEN g % 17 = 0 THEN 'failed' ELSE 'completed' END, 5, 1, 3, '{{}}'::jsonb,
       CASE WHEN g % 17 = 0 THEN 'Connection refused by host ' || g END,
       now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval + interval '2 seconds', 0, false
FROM generate_series(1, {jobs}) g;
INSERT INTO job_events (id, created_at, updated_at, job_id, level, context, message, metadata)
SELECT md5('ev' || g)::uuid, now() - (g || ' milliseconds')::interval, now(), md5('job' || (1 + g % {jobs}))::uuid,
       CASE WHEN g % 50 = 0 THEN 'error' WHEN g % 10 = 0 THEN 'warn' ELSE 'info' END, 'Bench',
       'Downloading: ' || (g % 100) || '% chunk ' || g, NULL
FROM generate_series(1, {events}) g;
ANALYZE audiobooks; ANALYZE requests; ANALYZE jobs; ANALYZE job_events;
"""


def timed(client, url: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:  # a redirect to /login is a broken bench, not a fast page
            raise SystemExit(f"bench broken: GET {url} answered {response.status_code}")
    return times


def seed(jobs: int, events: int) -> None:
    from app.db import database

    database.obj.execute_sql("TRUNCATE jobs, job_events, requests, audiobooks CASCADE")
    with database.obj.connection().cursor() as cursor:  # no parameters: the SQL's % are modulo operators
        cursor.execute(SEED.format(jobs=jobs, events=events, books=max(jobs // 10, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parse_args(parser, {"jobs": 2000, "events": 20_000, "repeat": 3})
    setup(ADMIN_PASSWORD="bench-password", ADMIN_API_TOKEN="bench-token-123456")
    quiet_logs()
    from app import create_app
    from app.config import get_settings

    app = create_app(get_settings())
    app.config.update(TESTING=True)
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)  # log in through the real form, with its CSRF token
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    login = client.post("/login", data={"username": "admin", "password": "bench-password", "csrf_token": token})
    if login.status_code != 302 or client.get("/admin/logs").status_code != 200:
        raise SystemExit(f"bench broken: could not log in (POST /login answered {login.status_code})")
    deep = min(400, args.jobs // PER_PAGE)  # page 400 of the 100,000 jobs; the last page of fewer
    pages = {"first page": "/admin/logs", "filtered (status=failed)": "/admin/logs?status=failed",
             "text search (q=refused)": "/admin/logs?q=refused",
             "text search in events (q=chunk 4242)": "/admin/logs?q=chunk+4242",
             f"deep page (page {deep})": f"/admin/logs?page={deep}"}

    seed(1_000, 10_000)
    timed(client, "/admin/logs", 3)
    baseline = timed(client, "/admin/logs", args.repeat)
    started = time.perf_counter()
    seed(args.jobs, args.events)
    print(f"seeded {args.jobs} jobs and {args.events} events in {time.perf_counter() - started:.0f} s")
    figures = {"baseline p95": percentile(baseline, 95)}
    print(f"baseline (1,000 jobs) first page: p50 {percentile(baseline, 50):.1f} ms  "
          f"p95 {percentile(baseline, 95):.1f} ms")
    for name, url in pages.items():
        timed(client, url, 2)  # warm
        times = timed(client, url, args.repeat)
        figures[f"{name} p95"] = percentile(times, 95)
        print(f"{name:38s} p50 {percentile(times, 50):6.1f} ms  p95 {percentile(times, 95):6.1f} ms  "
              f"(x{percentile(times, 95) / percentile(baseline, 95):.1f} of baseline p95; goal p95 <= 150 ms)")
    require_figures(figures)


if __name__ == "__main__":
    main()

"""The memory bench's load: `noop` jobs (add_job in a subprocess of the checkout under test) and books
through the whole pipeline (real qbittorrent-nox, the fake Prowlarr and Plex of tests/fakes)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.memory_stack import API_TOKEN
from common import wait_until

# The job every load runs, in a subprocess of the checkout under test (its own code and schema).
ENQUEUE_NOOPS = """
import sys, time
from app.config import get_settings
from app.db import bind_database
from app.jobs.service import add_job
from app.models import Job
bind_database(get_settings().effective_database_url)
count, timeout = int(sys.argv[1]), float(sys.argv[2])
started = time.monotonic()
ids = [add_job("noop", {}) for _ in range(count)]
done = 0
while time.monotonic() - started < timeout:
    done = Job.select().where(Job.id.in_(ids), Job.status == "completed").count()
    if done == count:
        print(f"{count} noop jobs completed in {time.monotonic() - started:.1f} s")
        sys.exit(0)
    time.sleep(0.5)
sys.exit(f"only {done} of {count} noop jobs completed within {timeout:.0f} s")
"""


def run_noops(root: Path, env: dict[str, str], count: int) -> None:
    done = subprocess.run([sys.executable, "-c", ENQUEUE_NOOPS, str(count), "600"], cwd=root, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"noop load failed: {done.stdout}{done.stderr}")
    print(done.stdout.strip())


class Pipeline:
    """Books that travel the whole pipeline: fake Prowlarr offers each, real qBittorrent already has the
    files (a recheck completes them), organize copies them, the fake Plex then lists them."""

    def __init__(self, workdir: Path, books: int):
        from daemons import QBittorrent
        from fakes.plex import FakePlex
        from fakes.prowlarr import FakeProwlarr

        self.books = books
        self.downloads, self.media = workdir / "downloads", workdir / "media"
        self.downloads.mkdir()
        self.media.mkdir()
        self.qbt = QBittorrent(workdir / "qbt", self.downloads)
        # Plex sees MEDIA_DIR under the same path; the books it lists are added below, not scanned
        self.prowlarr, self.plex = FakeProwlarr(), FakePlex(locations={str(self.media): None})

    def start(self) -> dict[str, str]:
        self.qbt.start()
        self.prowlarr.start()
        self.plex.start()
        return {"PROWLARR_URL": self.prowlarr.url, "PROWLARR_API_KEY": self.prowlarr.api_key,
                "DOWNLOAD_CLIENT": "qbittorrent", "DOWNLOAD_CLIENT_URL": self.qbt.url,
                "DOWNLOAD_CLIENT_USERNAME": self.qbt.username, "DOWNLOAD_CLIENT_PASSWORD": self.qbt.password,
                "DOWNLOAD_DIR": str(self.downloads), "MEDIA_DIR": str(self.media), "PLEX_URL": self.plex.url,
                "PLEX_TOKEN": self.plex.token, "PLEX_LIBRARY_ID": self.plex.section}

    def stop(self) -> None:
        for service in (self.prowlarr, self.plex):
            try:
                service.stop()
            except Exception:
                pass
        self.qbt.stop()

    def _books(self, first: int) -> list[tuple[str, str]]:
        """(title, author) of books first … first+self.books-1: distinct titles, so every round requests new ones."""
        words = ["Amber", "Harbor", "Lantern", "Meridian", "Orchard", "Quarry", "Saffron", "Tundra", "Willow",
                 "Zephyr", "Cobalt", "Ember"]
        authors = ["Ada Quill", "Bram Holt", "Cora Vance", "Dmitri Lusk", "Esme Farrow", "Felix Odum"]
        return [(f"The {words[i % len(words)]} {words[(i * 5 + 3) % len(words)]} Chronicle {i + 1}",
                 authors[i % len(authors)]) for i in range(first, first + self.books)]

    def run(self, port: int, round_number: int) -> None:
        from app.integrations.torrentfile import make_torrent

        from fakes.prowlarr import FakeRelease

        base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {API_TOKEN}"}
        books = self._books(round_number * self.books)
        for title, author in books:
            folder = self.downloads / f"{author} - {title} [M4B]"
            folder.mkdir()
            (folder / "Part 1.m4b").write_bytes(os.urandom(300_000))
            (folder / "cover.jpg").write_bytes(b"jpeg")
            self.prowlarr.releases.append(FakeRelease(f"{author} - {title} (Unabridged) [M4B]", 700 * 2**20,
                                                      seeders=30, torrent=make_torrent(folder)))
        started = time.monotonic()
        ids = []
        for title, author in books:
            reply = requests.post(f"{base}/api/requests", json={"title": title, "author": author}, headers=headers,
                                  timeout=10)
            reply.raise_for_status()
            ids.append(reply.json()["request"]["id"])

        def statuses() -> list[str]:
            return [requests.get(f"{base}/api/requests/{i}", headers=headers, timeout=10).json()["request"]["status"]
                    for i in ids]

        wait_until(lambda: all(s == "downloaded" for s in statuses()), 300, "every book to be downloaded", 1)
        self.plex.items.extend(self.plex.album(title, author) for title, author in books)
        schedules = requests.get(f"{base}/api/admin/jobs", headers=headers, timeout=10).json()
        rows = schedules.get("jobs", schedules) if isinstance(schedules, dict) else schedules
        check = next(row for row in rows if row["type"] == "plex_recently_added_check")

        def triggered() -> bool:  # 409 while a run of the check is still under way: try again
            reply = requests.post(f"{base}/api/admin/jobs/{check['id']}/trigger", headers=headers, timeout=10)
            if reply.status_code != 409:
                reply.raise_for_status()
            return reply.status_code != 409

        wait_until(triggered, 60, "Trigger Now of the Recently Added Check", 1)
        wait_until(lambda: all(s == "available" for s in statuses()), 120, "every book to be available", 1)
        print(f"{len(ids)} books went pending → available in {time.monotonic() - started:.1f} s")

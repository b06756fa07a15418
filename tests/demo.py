"""The newcomer demo: the whole stack with the fake Prowlarr and Plex and a real qbittorrent-nox.

    python tests/demo.py          (after `pip install -e .`, with Redis running)

Starts the web app on http://127.0.0.1:5000 (user `admin`, password `demo`), the scheduler and one worker
of every group, against a SQLite database and folders under a temporary directory. It then requests a
sample book: watch it go pending → searching → downloading → downloaded → available on /admin/requests
within a minute. The fake Plex sees MEDIA_DIR as /data/audiobooks, like a Plex in a Docker container
(PLEX_PATH_MAPPINGS), and scans the folder each import refreshes. Ctrl-C stops everything.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

GROUPS = ["search_indexers", "download_torrent", "monitor_download", "organize_files", "scan_plex",
          "plex_recently_added_check", "maintenance"]


def ensure_qbittorrent() -> None:
    if shutil.which("qbittorrent-nox"):
        return
    print("installing qbittorrent-nox (apt-get)…")
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "qbittorrent-nox"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def sample_book(downloads: Path) -> Path:
    folder = downloads / "Brandon Sanderson - The Way of Kings [M4B]"
    folder.mkdir(parents=True)
    sample = Path(__file__).parent / "fixtures" / "audio" / "sample.m4b"  # a real file: it gets tagged
    for part in ("Part 1.m4b", "Part 2.m4b"):
        shutil.copyfile(sample, folder / part)
    shutil.copyfile(sample.with_name("cover.jpg"), folder / "cover.jpg")
    return folder


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    import signal

    signal.signal(signal.SIGTERM, _interrupt)  # stop everything we started, as on Ctrl-C
    from app.integrations.torrentfile import make_torrent

    from daemons import QBittorrent
    from fakes.plex import FakePlex
    from fakes.prowlarr import FakeProwlarr, FakeRelease

    ensure_qbittorrent()
    root = Path(tempfile.mkdtemp(prefix="rmab-demo-"))
    downloads, media = root / "downloads", root / "media"
    downloads.mkdir()
    media.mkdir()
    folder = sample_book(downloads)
    qbt = QBittorrent(root / "qbittorrent", downloads).start()
    # Plex as in a Docker setup: it sees the library as /data/audiobooks (PLEX_PATH_MAPPINGS) and scans it
    prowlarr, plex = FakeProwlarr().start(), FakePlex(locations={"/data/audiobooks": str(media)}).start()
    prowlarr.releases = [FakeRelease("Brandon Sanderson - The Way of Kings (Unabridged) [M4B]", 700 * 2**20,
                                     seeders=42, torrent=make_torrent(folder))]
    env = {**os.environ, "INSTANCE_DIR": str(root / "instance"), "ADMIN_PASSWORD": "demo",
           "PROWLARR_URL": prowlarr.url, "PROWLARR_API_KEY": prowlarr.api_key, "DOWNLOAD_CLIENT": "qbittorrent",
           "DOWNLOAD_CLIENT_URL": qbt.url, "DOWNLOAD_CLIENT_USERNAME": qbt.username,
           "DOWNLOAD_CLIENT_PASSWORD": qbt.password, "DOWNLOAD_DIR": str(downloads), "MEDIA_DIR": str(media),
           "PLEX_URL": plex.url, "PLEX_TOKEN": plex.token, "PLEX_LIBRARY_ID": plex.section,
           "PLEX_PATH_MAPPINGS": f"{media}=/data/audiobooks",
           "MONITOR_POLL_SECONDS": "2", "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}
    env.pop("DATABASE_URL", None)
    os.environ.update({k: v for k, v in env.items()})
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "init-db"], cwd=ROOT, env=env, check=True)
    logs = root / "logs"
    logs.mkdir()
    commands = [[sys.executable, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1", "--port", "5000"],
                [sys.executable, "scheduler.py"]]
    commands += [[sys.executable, "-m", "workers", group, "--size", "1"] for group in GROUPS]
    processes = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=open(logs / f"{i}.log", "wb"),
                                  stderr=subprocess.STDOUT) for i, c in enumerate(commands)]
    try:
        from app.audiobook_requests.service import create_request
        from app.config import get_settings
        from app.db import bind_database
        from app.models import Request
        from app.schedules.service import trigger_job_now

        bind_database(get_settings().effective_database_url)
        time.sleep(2)
        request = create_request({"title": "The Way of Kings", "author": "Brandon Sanderson"})
        print(f"\nDashboard: http://127.0.0.1:5000/admin/requests  (admin / demo)   files: {root}\n")
        last, triggered = None, False
        while True:
            status = Request.get_by_id(request.id).status
            if status != last:
                print(f"  request {status}")
                last = status
            if status == "downloaded" and not triggered and plex.items:
                trigger_job_now("Recently Added Check")  # instead of waiting up to 5 minutes for its tick
                triggered = True
            if status in ("available", "failed"):
                print("\nDone. Browse the dashboard; Ctrl-C stops the demo.")
                while True:
                    time.sleep(3600)
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        qbt.stop()
        prowlarr.stop()
        plex.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

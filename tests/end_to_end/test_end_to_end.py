"""End to end through the HTTP API and real processes: a request travels pending → searching → downloading
(real qbittorrent-nox) → downloaded → available (fake Plex), files land in MEDIA_DIR, every step logs events."""
from __future__ import annotations

import os
import re

import pytest

from app.integrations.torrentfile import make_torrent
from app.models import Job, JobEvent, Request

from fakes.plex import FakePlex
from fakes.prowlarr import FakeProwlarr, FakeRelease
from helpers import start_process, stop_process, wait_for


def timeline_jobs(html: str) -> list[str]:
    """The job type of each row of a request page's timeline, top to bottom."""
    table = html.split('<table id="timeline">', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr class="event[^"]*"[^>]*>\s*<td>[^<]*</td>\s*<td><a [^>]*>([^<]+)</a>', table)
GROUPS = ["search_indexers", "download_torrent", "monitor_download", "organize_files", "plex_recently_added_check"]


@pytest.fixture
def stack(tmp_path, settings_env, use_settings, redis_conn, qbittorrent):
    qbt, downloads, media = qbittorrent, qbittorrent.download_dir, tmp_path / "media"
    media.mkdir()
    # Plex in another container: it sees MEDIA_DIR as /data/audiobooks and scans what a refresh names there
    prowlarr, plex = FakeProwlarr().start(), FakePlex(locations={"/data/audiobooks": str(media)}).start()
    use_settings(PROWLARR_URL=prowlarr.url, PROWLARR_API_KEY=prowlarr.api_key, DOWNLOAD_CLIENT="qbittorrent",
                 DOWNLOAD_CLIENT_URL=qbt.url, DOWNLOAD_CLIENT_USERNAME=qbt.username,
                 DOWNLOAD_CLIENT_PASSWORD=qbt.password, DOWNLOAD_DIR=str(downloads), MEDIA_DIR=str(media),
                 PLEX_URL=plex.url, PLEX_TOKEN=plex.token, PLEX_LIBRARY_ID=plex.section, MONITOR_POLL_SECONDS=1,
                 PLEX_PATH_MAPPINGS=f"{media}=/data/audiobooks")
    env = settings_env[1]
    processes = [start_process(["-m", "workers", group, "--size", "1"], env, tmp_path / f"{group}.log")
                 for group in GROUPS]
    processes.append(start_process(["scheduler.py"], env, tmp_path / "scheduler.log"))
    try:
        yield downloads, media, prowlarr, plex
    finally:
        for process in processes:
            stop_process(process)
        prowlarr.stop()
        plex.stop()


@pytest.mark.slow
def test_a_request_travels_from_pending_to_available(stack, client, admin_client, bearer):
    downloads, media, prowlarr, plex = stack
    folder = downloads / "Brandon Sanderson - The Way of Kings [M4B]"
    folder.mkdir()
    for name in ("Part 1.m4b", "Part 2.m4b"):
        (folder / name).write_bytes(os.urandom(200_000))
    (folder / "cover.jpg").write_bytes(b"jpeg")
    prowlarr.releases = [FakeRelease("Brandon Sanderson - The Way of Kings (Unabridged) [M4B]", 700 * 2**20,
                                     seeders=30, torrent=make_torrent(folder))]

    created = client.post("/api/requests", json={"title": "The Way of Kings", "author": "Brandon Sanderson"},
                          headers=bearer)
    assert created.status_code == 201
    request_id = created.get_json()["request"]["id"]
    seen = []

    def status_is(target):
        def check():
            status = client.get(f"/api/requests/{request_id}", headers=bearer).get_json()["request"]["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            return status == target
        return check

    wait_for(status_is("downloaded"), 90, interval=0.2, message="downloaded")
    target = media / "Brandon Sanderson" / "The Way of Kings"
    assert sorted(p.name for p in target.iterdir()) == ["Part 1.m4b", "Part 2.m4b", "cover.jpg"]
    assert (target / "Part 1.m4b").read_bytes() == (folder / "Part 1.m4b").read_bytes()

    # the import refreshed the book's folder by its Plex path and the fake Plex scanned it; the Recently
    # Added Check (Trigger Now, not a minute later) matches it
    wait_for(lambda: plex.scans, 10, message="Plex scan")
    assert plex.scans == [{"path": "/data/audiobooks/Brandon Sanderson/The Way of Kings",
                           "added": ["The Way of Kings"]}]
    from app.config import get_settings
    from app.models import ScheduledJob
    from app.schedules.defaults import ensure_default_schedules

    ensure_default_schedules(get_settings())
    schedule = ScheduledJob.get(ScheduledJob.type == "plex_recently_added_check")
    trigger = client.post(f"/api/admin/jobs/{schedule.id}/trigger", headers=bearer)
    assert trigger.status_code == 200
    wait_for(status_is("available"), 30, interval=0.2, message="available")

    assert seen[0] in ("pending", "searching") and seen[-1] == "available"
    assert {"downloading", "downloaded"} <= set(seen)
    shown = client.get(f"/api/requests/{request_id}", headers=bearer).get_json()["request"]
    types = [j["type"] for j in shown["jobs"]]
    assert types[:4] == ["search_indexers", "download_torrent", "monitor_download", "organize_files"]
    assert all(j["status"] == "completed" for j in shown["jobs"])
    contexts = {e.context for e in JobEvent.select().join(Job).where(Job.request == request_id)}
    assert {"SearchIndexers", "DownloadTorrent", "MonitorDownload", "OrganizeFiles"} <= contexts
    assert Request.get_by_id(request_id).completed_at is not None

    # the request's page tells the whole story on one timeline, oldest first: search, grab, the download's
    # polls (here complete at once; milestones: tests/reports/test_request_story.py), import, and the Plex check that
    # found the book (a system job, not the request's)
    page = admin_client.get(f"/admin/requests/{request_id}")
    assert page.status_code == 200
    story = timeline_jobs(page.get_data(as_text=True))
    assert [kind for i, kind in enumerate(story) if i == 0 or story[i - 1] != kind] == [
        "Search Indexers", "Download Torrent", "Monitor Download", "Organize Files", "Plex Recently Added Check"]

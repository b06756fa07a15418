"""download_torrent: fetch the release, hand it to the download client, start monitoring."""
from __future__ import annotations

from app.audiobook_requests.state import R, transition
from app.config import get_settings
from app.integrations.errors import PermanentServiceError, ServiceError, TransientServiceError
from app.integrations.prowlarr import ProwlarrClient
from app.integrations.torrent import CATEGORY, download_client
from app.integrations.torrentfile import TorrentFileError, parse_magnet, read_torrent
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job
from app.models import DownloadHistory, utcnow
from app.pipeline.ranking import Release
from workers.processors import register
from workers.context import is_last_attempt

MONITOR_FIRST_DELAY = 3  # seconds: gives the client time to register the torrent (original's race fix)


@register("download_torrent")
def process_download(payload: dict) -> dict:
    request_id = payload["requestId"]
    log = create_job_logger(payload["jobId"], "DownloadTorrent")
    settings = get_settings()
    if not transition(request_id, R.DOWNLOADING, progress=0):
        log.warn("Request is no longer searching; nothing to download")
        return {"success": False, "skipped": True}
    candidates = [Release.from_payload(payload["torrent"])]
    candidates += [Release.from_payload(t) for t in payload.get("alternateTorrents") or []]
    try:
        prowlarr = ProwlarrClient(settings.prowlarr_url, settings.prowlarr_api_key)
        client = download_client()
        for index, release in enumerate(candidates):
            link = release.download_url or release.magnet_url
            try:
                fetched = prowlarr.fetch_release(link or "")
                if fetched.torrent is not None:
                    meta = read_torrent(fetched.torrent)
                    info_hash, name = meta.info_hash, meta.name
                elif fetched.magnet:
                    magnet = parse_magnet(fetched.magnet)
                    info_hash, name = magnet.info_hash, magnet.name or release.title
                else:
                    raise PermanentServiceError("Prowlarr", "release link gave neither a torrent nor a magnet")
            except (TransientServiceError, PermanentServiceError, TorrentFileError) as exc:
                status = getattr(exc, "status", None)
                if isinstance(exc, TransientServiceError) and status is None:
                    raise  # Prowlarr unreachable: the job retries, no point trying the others now
                if status in (401,):
                    raise
                log.warn(f"Release {index + 1}/{len(candidates)} {release.title!r} unavailable: {exc}")
                continue
            existing = client.get(info_hash)
            if existing is None:
                client.add(torrent=fetched.torrent, magnet=fetched.magnet, category=CATEGORY,
                           tags=[f"request-{request_id}"], save_path=settings.download_dir or None, name=name)
                log.info(f"Added {name!r} ({info_hash}) to {settings.download_client}")
            else:
                log.info(f"{name!r} ({info_hash}) is already in {settings.download_client}; not added twice")
            history = DownloadHistory.create(
                request=request_id, indexer_name=release.indexer, torrent_name=release.title, torrent_hash=info_hash,
                torrent_size_bytes=release.size, magnet_link=fetched.magnet, torrent_url=release.download_url,
                seeders=release.seeders, leechers=release.leechers, selected=True,
                download_client=settings.download_client, download_client_id=info_hash,
                download_status="downloading", started_at=utcnow())
            monitor_id = add_job("monitor_download", {
                "requestId": request_id, "downloadHistoryId": str(history.id), "downloadClientId": info_hash,
                "downloadClient": settings.download_client}, delay=MONITOR_FIRST_DELAY)
            return {"success": True, "infoHash": info_hash, "torrent": name, "monitorJobId": monitor_id}
        raise TransientServiceError("Prowlarr", f"all {len(candidates)} releases are temporarily unavailable")
    except ServiceError as exc:
        final = isinstance(exc, PermanentServiceError) or is_last_attempt()
        if final:
            transition(request_id, R.FAILED, error_message=str(exc))
        log.error(f"Download failed: {exc}" + ("" if final else " (will retry)"))
        raise

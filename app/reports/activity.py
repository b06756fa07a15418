"""The Activity read model (/admin/activity, GET /api/activity): every download in flight, with what the
download client says of it now.

In flight: a download_history row with a torrent in the client that has not ended (failed, removed): still
downloading, finished and waiting for or past its import, or let go of and seeding until its indexer's limit.
The client is asked once per client kind for every row (`statuses(hashes)`: one qBittorrent torrents/info,
one Transmission torrent-get), never once per row. A client that cannot be reached leaves its rows with the
database's view and `clientError` says why.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from app.audiobook_requests.give_up import FINISHED
from app.config import get_settings
from app.integrations.errors import ServiceError
from app.integrations.torrent import TorrentStatus, download_client
from app.models import Audiobook, DownloadHistory, DownloadStatus, Request, status_values, utcnow
from app.pipeline import activity_rules

MAX_ROWS = 500  # a page, not a report: far more than a home server has in flight


def in_flight() -> list[DownloadHistory]:
    ended = status_values(DownloadStatus.ENDED)
    query = (DownloadHistory.select(DownloadHistory, Request, Audiobook).join(Request).join(Audiobook)
             .where(DownloadHistory.download_client_id.is_null(False)
                    & DownloadHistory.download_status.not_in(ended))
             .order_by(DownloadHistory.created_at.desc()).limit(MAX_ROWS))
    return list(query)


def client_statuses(rows: list[DownloadHistory]) -> tuple[dict[tuple[str, str], TorrentStatus], dict[str, str]]:
    """One call per client kind for all its rows: the statuses by (kind, info hash), and each unreachable
    kind's error."""
    hashes: dict[str, list[str]] = {}
    for row in rows:
        hashes.setdefault(_kind(row), []).append(row.download_client_id.lower())
    found: dict[tuple[str, str], TorrentStatus] = {}
    errors: dict[str, str] = {}
    for kind, wanted in hashes.items():
        try:
            for info_hash, status in download_client(kind).statuses(wanted).items():
                found[(kind, info_hash)] = status
        except ServiceError as exc:
            errors[kind] = str(exc)
    return found, errors


def _kind(row: DownloadHistory) -> str:
    """The row's client kind (rows from before the column was filled: the configured one)."""
    return row.download_client or get_settings().download_client


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def row_to_dict(row: DownloadHistory, status: TorrentStatus | None, client_error: str | None,
                now: datetime) -> dict[str, Any]:
    from app.audiobook_requests.torrents import describe_seeding

    request, book = row.request, row.request.audiobook
    progress = status.progress if status else None
    done = activity_rules.finished(row.download_status in FINISHED, progress)
    allowed = activity_rules.actions(kept_seeding=row.download_status == DownloadStatus.SEEDING.value,
                                     finished_now=done, request_status=request.status)
    since = row.started_at or row.created_at
    if status is not None:
        state = status.state.value
    else:
        state = "unreachable" if client_error else "not in client"
    return {
        "id": str(row.id), "requestId": str(request.id), "requestStatus": request.status,
        "book": {"title": book.title, "author": book.author},
        "release": row.torrent_name, "indexer": row.indexer_name, "client": row.download_client,
        "infoHash": row.download_client_id, "downloadStatus": row.download_status,
        "state": state, "rawState": status.raw_state if status else None,
        "progress": round(progress, 4) if progress is not None else None,
        "downloadSpeed": status.download_speed if status else None,
        "eta": activity_rules.eta_seconds(status.eta, done) if status else None,
        "seeders": status.seeders if status else row.seeders,
        "size": (status.size if status else None) or row.torrent_size_bytes,
        "addedAt": _iso(since), "ageSeconds": int((now - since).total_seconds()) if since else None,
        "finished": done, "seeding": describe_seeding(row) if done else None,  # "seeding until …"
        "clientError": client_error,
        "actions": {"remove": allowed.remove, "searchAgain": allowed.search_again, "refusal": allowed.refusal},
    }


def activity() -> list[dict[str, Any]]:
    """Every download in flight, newest first."""
    rows = in_flight()
    statuses, errors = client_statuses(rows)
    now = utcnow()
    result = []
    for row in rows:
        kind = _kind(row)
        result.append(row_to_dict(row, statuses.get((kind, row.download_client_id.lower())), errors.get(kind), now))
    return result

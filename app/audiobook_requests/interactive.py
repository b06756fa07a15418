"""Interactive search (admin): list every Prowlarr result for a request, ranked, and download the one picked.

- `search_releases` runs the search now (SEARCH_TIMEOUT_SECONDS), ranks every result with the pipeline's
  ranking (app/pipeline/release_search.py) and keeps the results in Redis for RELEASES_TTL_SECONDS under
  `rmab:releases:<request id>`, keyed by guid (Prowlarr's, else the link; redacted as shown): the pick must
  name a release the admin was shown, and it is downloaded exactly as listed (no second search that could
  answer differently). The results are kept redacted; the links the pick needs are kept apart, whole.
- `pick_release` queues download_torrent with that release alone (its rank ignored; the blocklist, read
  again at pick time, still refuses) after moving the request into `searching` (state.PICK_RELEASE_FROM).
  A downloading request swaps: its monitor is stopped, its unfinished torrent removed with its partial files
  and its release blocklisted; a cancelled request is re-opened (unless its book has another active request).

Errors (RequestError, JSON via app/web/errors.py): Prowlarr not configured 409; Prowlarr unreachable,
timing out or refusing 502; Redis down 503; an unknown or expired guid 404; a blocklisted release or a
request in another status 409.
"""
from __future__ import annotations

import json
from typing import Any

from redis.exceptions import RedisError

from app.audiobook_requests.blocklist import blocklist_for
from app.audiobook_requests.service import RequestError, get_request, refuse_a_second_active_request
from app.audiobook_requests.state import PICK_RELEASE_FROM, RequestStatus, can_pick, enter_search_for_pick, transition
from app.audiobook_requests.torrents import release_torrents, timeline_job
from app.config import get_settings
from app.integrations.errors import ServiceError
from app.integrations.prowlarr import ProwlarrClient
from app.jobs.logger import create_job_logger
from app.jobs.service import add_job, cancel_run
from app.jobs.types import JobKind, Priority
from app.models import TERMINAL_JOB_STATUSES, DownloadHistory, DownloadStatus, Job, Request, status_values
from app.pipeline.ranking import Ranked, Release
from app.pipeline.release_search import (
    BLOCKLISTED,
    Blocklist,
    book_of,
    download_payload,
    rank_all,
    release_key,
    release_row,
    storable,
)
from app.redaction import redact
from app.redis_connection import get_redis

SEARCH_TIMEOUT_SECONDS = 30.0   # the admin waits for the answer: shorter than the worker's 60 s
RELEASES_TTL_SECONDS = 3600
EVENT_CONTEXT = "InteractiveSearch"
_GUID_LIMIT = 4000
_LINK_FIELDS = ("downloadUrl", "magnetUrl", "guid")
# what a pick does beyond queueing the download, said in its event
_PICK_NOTES = {RequestStatus.DOWNLOADING.value: ", swapped for the unfinished download (removed and blocklisted)",
               RequestStatus.CANCELLED.value: "; the cancelled request is re-opened"}


def _key(request: Request) -> str:
    return f"rmab:releases:{request.id}"


def blocklist_of(request: Request) -> Blocklist:
    return blocklist_for(request.id)


def search_releases(request_id: str) -> list[dict[str, Any]]:
    """Every result for the request's book, best first, each with its score breakdown and `rejected`."""
    request = get_request(request_id)
    if request.status == RequestStatus.DELETED.value:
        raise RequestError("the request is deleted", 409)
    settings = get_settings()
    if not settings.prowlarr_url or not settings.prowlarr_api_key:
        raise RequestError("Prowlarr is not configured: set PROWLARR_URL and PROWLARR_API_KEY", 409)
    book = request.audiobook
    try:
        releases = ProwlarrClient(settings.prowlarr_url, settings.prowlarr_api_key,
                                  timeout=SEARCH_TIMEOUT_SECONDS).search(f"{book.title} {book.author}")
    except ServiceError as exc:
        raise RequestError(f"Prowlarr search failed: {exc}", 502) from None
    ranked = rank_all(storable(releases)[0], blocklist_of(request), book.title, book.author)
    try:
        get_redis().set(_key(request), json.dumps(kept_for_pick(ranked)), ex=RELEASES_TTL_SECONDS)
    except RedisError as exc:
        raise RequestError(f"Redis is unavailable, the results could not be kept for a pick: {exc}", 503) from None
    return [release_row(item) for item in ranked]


def _stored_release(request: Request, guid: str) -> Release:
    try:
        raw = get_redis().get(_key(request))
    except RedisError as exc:
        raise RequestError(f"Redis is unavailable: {exc}", 503) from None
    payload = release_for_pick(json.loads(raw), guid) if raw else None  # type: ignore[arg-type]  # sync reply
    if payload is None:
        raise RequestError(f"release {guid[:200]!r} is not among this request's last search results (they are "
                           f"kept {RELEASES_TTL_SECONDS // 60} min): search again", 404)
    return Release.from_payload(payload)


def kept_for_pick(ranked: list[Ranked]) -> dict[str, Any]:
    """What Redis keeps of a search, by the key the admin is shown (release_key, redacted): the results
    redacted like anything shown, and apart from them the links a pick downloads (a tracker passkey
    included: the indexer refuses a redacted one)."""
    releases, links = {}, {}
    for item in ranked:
        key, payload = release_key(item.release), item.release.to_payload()
        releases[key] = redact(payload)
        links[key] = {name: payload[name] for name in _LINK_FIELDS}
    return {"releases": releases, "links": links}


def release_for_pick(kept: Any, key: str) -> dict[str, Any] | None:
    """The release payload a pick of `key` downloads (links whole), or None when it was not kept."""
    if not isinstance(kept, dict) or not isinstance(kept.get("releases"), dict):
        return None  # not this shape (kept by an older version for an hour at most): search again
    shown, links = kept["releases"].get(key), (kept.get("links") or {}).get(key)
    return {**shown, **links} if isinstance(shown, dict) and isinstance(links, dict) else None


def _guid(body: Any) -> str:
    guid = body.get("guid") if isinstance(body, dict) else None
    if not isinstance(guid, str) or not guid.strip():
        raise RequestError("guid is required: the guid of a release from GET …/releases", field="guid")
    if len(guid) > _GUID_LIMIT:
        raise RequestError(f"guid is longer than {_GUID_LIMIT} characters", field="guid")
    return guid


def pick_release(request_id: str, body: Any) -> str:
    """Queue download_torrent with the picked release; returns the job id. A downloading request swaps: its
    monitor is stopped and its torrent let go of and blocklisted (`_swap_out`) before the new one is queued."""
    request = get_request(request_id)
    guid = _guid(body)
    if not can_pick(request.status):
        raise RequestError(f"a request in status {request.status} cannot take a picked release (only "
                           f"{', '.join(s.value for s in PICK_RELEASE_FROM)})", 409)
    release = _stored_release(request, guid)
    if blocklist_of(request).blocks(release):
        raise RequestError(f"{release.title!r} is {BLOCKLISTED} for this request", 409)
    if request.status == RequestStatus.DOWNLOADING.value and _downloading(request).blocks(release):
        raise RequestError(f"{release.title!r} is the release this request is downloading now", 409)
    if request.status == RequestStatus.CANCELLED.value:
        refuse_a_second_active_request(request)
    if not enter_search_for_pick(request.id, request.status):
        raise RequestError(f"request moved on (now {Request.get_by_id(request.id).status}); nothing queued", 409)
    # A queued (or running) search would pick a release of its own, a monitor would go on watching the swapped
    # download: cancelled (a running one is fenced off, so it writes nothing more).
    for job in Job.select().where((Job.request == request.id) & Job.status.not_in(TERMINAL_JOB_STATUSES)):
        cancel_run(job, "An admin picked a release")
    if request.status == RequestStatus.DOWNLOADING.value:
        _swap_out(request, release)
    try:
        payload = download_payload(str(request.id), book_of(request.audiobook), release, interactive=True)
        job_id = add_job(JobKind.DOWNLOAD_TORRENT, payload, priority=Priority.HIGH)
    except Exception as exc:
        transition(
            request.id,
            RequestStatus.FAILED,
            only_from=(RequestStatus.SEARCHING,),
            error_message=f"could not queue the download: {exc}",
        )
        raise
    create_job_logger(job_id, EVENT_CONTEXT).info(
        f"Release picked by an admin: {release.title!r} from {release.indexer or 'an unknown indexer'}"
        + _PICK_NOTES.get(request.status, ""),
        {"guid": guid, "title": release.title, "indexer": release.indexer, "seeders": release.seeders,
         "size": release.size, "was": request.status})
    return job_id


def _downloading(request: Request) -> Blocklist:
    """The releases the request is downloading now, as a Blocklist (title or info hash), to refuse a swap for
    the same release."""
    return Blocklist.of(DownloadHistory.select(DownloadHistory.torrent_name, DownloadHistory.torrent_hash)
                        .where((DownloadHistory.request == request.id)
                               & DownloadHistory.download_status.not_in(status_values(DownloadStatus.ENDED)))
                        .tuples())


def _swap_out(request: Request, picked: Release) -> None:
    """The download being swapped: an unfinished torrent is removed with its partial files (a finished one
    keeps seeding until its indexer's limit), and its release is blocklisted for the request."""
    events = create_job_logger(timeline_job(request.id), EVENT_CONTEXT)
    released = release_torrents(request.id, events, block_reason=f"swapped by an admin for {picked.title!r}")
    events.info(f"Download swapped by an admin for {picked.title!r}: {len(released.removed)} unfinished torrents "
                f"removed with their files, {len(released.seeding)} kept seeding, releases blocklisted",
                released.to_dict())

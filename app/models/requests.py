"""The request pipeline's tables: audiobooks, requests, their downloads and blocked releases, the Plex library."""
from __future__ import annotations

import peewee

from app.models.base import BaseModel
from app.statuses import AudiobookStatus, DownloadStatus


class Audiobook(BaseModel):
    audible_asin = peewee.CharField(null=True, index=True)
    title = peewee.TextField()
    author = peewee.TextField()
    narrator = peewee.TextField(null=True)
    description = peewee.TextField(null=True)
    cover_art_url = peewee.TextField(null=True)
    status = peewee.CharField(default=AudiobookStatus.REQUESTED.value)
    file_path = peewee.TextField(null=True)
    file_format = peewee.CharField(null=True)
    file_size_bytes = peewee.BigIntegerField(null=True)
    plex_guid = peewee.TextField(null=True)
    plex_library_id = peewee.CharField(null=True)
    completed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "audiobooks"


class Request(BaseModel):
    user_id = peewee.CharField(default="admin")
    audiobook = peewee.ForeignKeyField(Audiobook, column_name="audiobook_id", backref="requests",
                                       on_delete="CASCADE")
    status = peewee.CharField(default="pending", index=True)
    progress = peewee.IntegerField(default=0)
    priority = peewee.IntegerField(default=0)
    error_message = peewee.TextField(null=True)
    search_attempts = peewee.IntegerField(default=0)
    download_attempts = peewee.IntegerField(default=0)
    import_attempts = peewee.IntegerField(default=0)
    max_import_retries = peewee.IntegerField(default=5)
    last_search_at = peewee.DateTimeField(null=True)
    # While awaiting_search: when retry_missing_torrents searches again (back-off per request, migration 9).
    next_search_at = peewee.DateTimeField(null=True)
    # Searches in a row that found nothing usable: the back-off of the next one (migration 10).
    fruitless_searches = peewee.IntegerField(default=0)
    last_import_at = peewee.DateTimeField(null=True)
    completed_at = peewee.DateTimeField(null=True)
    # app/library/book_identity.py: unique among active requests (migration 12); NULL on rows made before it
    # that repeated an active book, and on rows not made by create_request.
    book_key = peewee.CharField(max_length=64, null=True)

    class Meta:
        table_name = "requests"


class DownloadHistory(BaseModel):
    request = peewee.ForeignKeyField(Request, column_name="request_id", backref="downloads", on_delete="CASCADE")
    indexer_name = peewee.CharField(null=True)
    torrent_name = peewee.TextField(null=True)
    torrent_hash = peewee.CharField(null=True, index=True)
    torrent_size_bytes = peewee.BigIntegerField(null=True)
    magnet_link = peewee.TextField(null=True)
    torrent_url = peewee.TextField(null=True)
    seeders = peewee.IntegerField(null=True)
    leechers = peewee.IntegerField(null=True)
    quality_score = peewee.IntegerField(null=True)
    selected = peewee.BooleanField(default=False)
    download_client = peewee.CharField(null=True)
    download_client_id = peewee.CharField(null=True)
    download_status = peewee.CharField(default=DownloadStatus.QUEUED.value)
    download_error = peewee.TextField(null=True)
    download_path = peewee.TextField(null=True)
    started_at = peewee.DateTimeField(null=True)
    completed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "download_history"


class PlexLibrary(BaseModel):
    plex_guid = peewee.CharField(unique=True)
    plex_rating_key = peewee.CharField(null=True)
    title = peewee.TextField()
    author = peewee.TextField(null=True)
    narrator = peewee.TextField(null=True)
    summary = peewee.TextField(null=True)
    duration = peewee.BigIntegerField(null=True)
    year = peewee.IntegerField(null=True)
    user_rating = peewee.FloatField(null=True)
    file_path = peewee.TextField(null=True)
    thumb_url = peewee.TextField(null=True)
    plex_library_id = peewee.CharField(null=True)
    asin = peewee.CharField(null=True, index=True)
    added_at = peewee.DateTimeField(null=True)
    last_scanned_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "plex_library"


class BlockedRelease(BaseModel):
    """A release that failed for a request (stalled, client error, swapped, a terminal import warning): later
    searches skip it. Written only by app/audiobook_requests/blocklist.py."""

    request = peewee.ForeignKeyField(Request, column_name="request_id", backref="blocked_releases",
                                     on_delete="CASCADE")
    title = peewee.TextField()
    info_hash = peewee.CharField(null=True)
    indexer = peewee.CharField(null=True)  # migration 9
    reason = peewee.TextField()

    class Meta:
        table_name = "blocked_releases"
        indexes = ((("request", "title"), True),)

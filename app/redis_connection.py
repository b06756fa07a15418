"""The process's Redis connection, one per URL: the queues, the paused-type mirror, the login throttle and the
shared torrent snapshot all use it. Below the job package, so auth and the integrations reach it without it."""
from __future__ import annotations

from functools import lru_cache

from redis import Redis


@lru_cache(maxsize=8)
def _redis_for(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)


def get_redis(url: str | None = None) -> Redis:
    """The connection to `url`, by default the settings' REDIS_URL."""
    if url is None:
        from app.config import get_settings

        url = get_settings().redis_url
    return _redis_for(url)

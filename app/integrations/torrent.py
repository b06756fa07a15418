"""The configured download client (DOWNLOAD_CLIENT): the factory above qBittorrent's and Transmission's clients.
The interface they share (TorrentStatus, DownloadClient) is app/integrations/torrent_interface.py, re-exported here."""
from __future__ import annotations

from app.config import get_settings
from app.integrations.qbittorrent import QBittorrentClient
from app.integrations.torrent_interface import DownloadClient, TorrentStatus
from app.integrations.transmission import TransmissionClient

__all__ = ["DownloadClient", "TorrentStatus", "download_client", "set_client_factory"]

_factory_override = None
_clients: dict[tuple, DownloadClient] = {}


def download_client(kind: str | None = None) -> DownloadClient:
    """The configured client (DOWNLOAD_CLIENT), one per process and settings (a qBittorrent session is
    reused across polls instead of logging in each time). Tests and benchmarks may install a factory."""
    settings = get_settings()
    kind = kind or settings.download_client
    if _factory_override is not None:
        return _factory_override(kind)
    key = (kind, settings.download_client_url, settings.download_client_username, settings.download_client_password)
    client = _clients.get(key)
    if client is None:
        if kind == "transmission":
            client = TransmissionClient(settings.download_client_url, settings.download_client_username,
                                        settings.download_client_password)
        else:
            client = QBittorrentClient(settings.download_client_url, settings.download_client_username,
                                       settings.download_client_password)
        _clients[key] = client
    return client


def set_client_factory(factory) -> None:
    global _factory_override
    _factory_override = factory

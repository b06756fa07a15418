"""The qBittorrent client against the 5.2 protocol (Debian ships 4.5.2, which the real-daemon tests cover)."""
from __future__ import annotations

import pytest

from app.integrations.errors import PermanentServiceError
from app.integrations.qbittorrent import QBittorrentClient
from app.integrations.torrentfile import magnet_uri
from app.pipeline.download_state import DownloadState

HASH = "0123456789abcdef0123456789abcdef01234567"


def test_login_204_cookie_json_add_and_stopped_states(qbt5):
    client = QBittorrentClient(qbt5.url, qbt5.username, qbt5.password)
    assert client.version() == "v5.2.0"  # logged in with a 204 and the QBT_SID_<port> cookie
    client.add(magnet=magnet_uri(HASH, "Book"), category="readmeabook", tags=["request-1"])
    assert qbt5.last_add["stopped"] == "false" and qbt5.last_add["paused"] == "false"  # both sent
    assert qbt5.last_add["category"] == "readmeabook" and qbt5.last_add["tags"] == "request-1"
    status = client.get(HASH)
    assert status.state is DownloadState.COMPLETE and status.raw_state == "stoppedUP"
    with pytest.raises(PermanentServiceError, match="refused"):
        client.add(magnet=magnet_uri(HASH, "Book"), category="readmeabook", tags=[])  # 409: nothing added


def test_an_expired_session_logs_in_again_once(qbt5):
    client = QBittorrentClient(qbt5.url, qbt5.username, qbt5.password)
    client.version()
    qbt5.expire_sessions()
    assert client.get(HASH) is None
    assert qbt5.logins == 2


def test_bad_credentials_name_the_settings(qbt5):
    with pytest.raises(PermanentServiceError, match="DOWNLOAD_CLIENT_USERNAME and DOWNLOAD_CLIENT_PASSWORD"):
        QBittorrentClient(qbt5.url, qbt5.username, "wrong").version()

"""Where a torrent goes and how it is labelled: the category (DOWNLOAD_CLIENT_CATEGORY), the tags `readmeabook`
and `request-<id>`, and `savepath` only for a category without a save path of its own.

The pure rules by table; the qBittorrent client against the fake qBittorrent 5.2 AND the real qbittorrent-nox
4.5.2 with the same assertions (so the fake answers as qBittorrent does); Transmission's labels against the real
transmission-daemon.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.config import SettingsError, load_settings
from app.integrations.errors import PermanentServiceError
from app.integrations.qbittorrent import QBittorrentClient
from app.integrations.torrentfile import magnet_uri
from app.integrations.transmission import TransmissionClient
from app.pipeline.torrent_placement import (
    parse_category,
    qbittorrent_location,
    request_tags,
    transmission_labels,
)

from helpers import client_labels

# --- the rules ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("category_save_path,save_path,fields", [
    ("/data/audiobooks", "/downloads", {"autoTMM": "true"}),          # the category's own path wins
    ("audiobooks", "/downloads", {"autoTMM": "true"}),                # relative to the default save path
    ("/data/audiobooks", None, {"autoTMM": "true"}),
    ("", "/downloads", {"savepath": "/downloads", "autoTMM": "false"}),  # no path of its own: DOWNLOAD_DIR
    ("  ", "/downloads", {"savepath": "/downloads", "autoTMM": "false"}),
    ("", None, {}),                                                   # neither: the client's defaults
    ("", "", {}),
])
def test_savepath_is_sent_only_when_the_category_has_none(category_save_path, save_path, fields):
    assert qbittorrent_location(category_save_path, save_path) == fields


@pytest.mark.parametrize("category,tags,labels", [
    ("readmeabook", ["readmeabook", "request-7"], ["readmeabook", "request-7"]),  # once: duplicates are refused
    ("audiobooks", ["readmeabook", "request-7"], ["audiobooks", "readmeabook", "request-7"]),
    ("audiobooks", ["", " ", "request-7"], ["audiobooks", "request-7"]),            # empty labels are refused
    ("books/audio", [" request-7 "], ["books/audio", "request-7"]),
])
def test_transmission_labels(category, tags, labels):
    assert transmission_labels(category, tags) == labels


def test_a_request_is_tagged_as_the_apps_and_as_its_own():
    assert request_tags("3f2a") == ["readmeabook", "request-3f2a"]


@pytest.mark.parametrize("raw,name", [
    ("readmeabook", "readmeabook"), ("  Audiobooks  ", "Audiobooks"), ("books/audio", "books/audio"),
    ("a", "a"), ("Hörbücher", "Hörbücher"), ("books-2 (new)", "books-2 (new)"),
])
def test_good_category_names(raw, name):
    assert parse_category(raw) == name


@pytest.mark.parametrize("raw,problem", [
    ("", "must name a category"), ("   ", "must name a category"), ("books,audio", "comma"),
    ("books\taudio", "control"), ("/books", "start or end with '/'"), ("books/", "start or end with '/'"),
    ("books//audio", "'//'"), ("books\\audio", "'\\\\'"),
])
def test_bad_category_names_stop_the_start(raw, problem):
    with pytest.raises(ValueError, match=problem):
        parse_category(raw)
    with pytest.raises(SettingsError, match="DOWNLOAD_CLIENT_CATEGORY"):
        load_settings({"DOWNLOAD_CLIENT_CATEGORY": raw}, env_file=None)


def test_the_category_defaults_to_readmeabook():
    assert load_settings({}, env_file=None).download_client_category == "readmeabook"
    assert load_settings({"DOWNLOAD_CLIENT_CATEGORY": "audiobooks"}, env_file=None).download_client_category \
        == "audiobooks"


# --- the qBittorrent client: the fake 5.2 and the real 4.5.2 give the same answers ---------------------------


@dataclass
class Server:
    url: str
    username: str
    password: str
    download_dir: Path

    def client(self) -> QBittorrentClient:
        return QBittorrentClient(self.url, self.username, self.password)

    def post(self, client: QBittorrentClient, path: str, **form: str) -> requests.Response:
        """What a user (or another worker) does in qBittorrent, on the client's logged-in session."""
        client.version()
        return client.session.post(f"{self.url}/api/v2/{path}", data=form, timeout=5)


@pytest.fixture(params=["fake-5.2", pytest.param("qbittorrent-nox", marks=[pytest.mark.slow, pytest.mark.daemons])])
def qbt(request):
    if request.param == "qbittorrent-nox":
        real = request.getfixturevalue("qbittorrent")
        return Server(real.url, real.username, real.password, real.download_dir)
    fake = request.getfixturevalue("qbt5")
    return Server(fake.url, fake.username, fake.password, Path(fake.default_save_path))


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _magnet() -> tuple[str, str]:
    info_hash = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    return info_hash, magnet_uri(info_hash, "Book")


def test_a_missing_category_is_created_and_download_dir_is_sent(qbt):
    client, category = qbt.client(), _name("audiobooks")
    info_hash, magnet = _magnet()
    target = str(qbt.download_dir / "rmab")
    assert category not in client.categories()
    client.add(magnet=magnet, category=category, tags=request_tags("req-42"), save_path=target)
    assert client.categories()[category] == ""  # created, without a save path of its own
    assert client_labels(client, info_hash) == {"category": category, "tags": {"readmeabook", "request-req-42"},
                                                "save_path": target, "auto_tmm": False}


def test_a_category_with_its_own_save_path_keeps_it(qbt):
    client, category = qbt.client(), _name("audiobooks")
    own = str(qbt.download_dir / _name("category-path"))
    assert qbt.post(client, "torrents/createCategory", category=category, savePath=own).status_code == 200
    info_hash, magnet = _magnet()
    client.add(magnet=magnet, category=category, tags=request_tags("req-43"),
               save_path=str(qbt.download_dir / "rmab"))
    assert client_labels(client, info_hash) == {"category": category, "tags": {"readmeabook", "request-req-43"},
                                                "save_path": own, "auto_tmm": True}
    assert client.categories()[category] == own  # untouched


def test_create_category_answers_as_qbittorrent_does(qbt):
    client, category = qbt.client(), _name("audiobooks")
    created = qbt.post(client, "torrents/createCategory", category=category)
    again = qbt.post(client, "torrents/createCategory", category=category)
    invalid = qbt.post(client, "torrents/createCategory", category="books//audio")
    empty = qbt.post(client, "torrents/createCategory", category="")
    missing = qbt.post(client, "torrents/createCategory", savePath="/x")
    assert (created.status_code, created.text) == (200, "")
    assert (again.status_code, again.text) == (409, "Unable to create category")
    assert (invalid.status_code, invalid.text) == (409, "Incorrect category name")
    assert (empty.status_code, empty.text) == (400, "Category cannot be empty")
    assert missing.status_code == 400
    assert client.categories()[category] == "" and "books//audio" not in client.categories()


def test_a_category_another_worker_created_meanwhile_is_read_again(qbt, monkeypatch):
    client, category = qbt.client(), _name("audiobooks")
    own = str(qbt.download_dir / _name("category-path"))
    assert qbt.post(client, "torrents/createCategory", category=category, savePath=own).status_code == 200
    views, current = [{}], client.categories  # this worker read the list just before the other one created it
    monkeypatch.setattr(client, "categories", lambda: views.pop() if views else current())
    assert client.category_save_path(category) == own  # the 409 made it read the list again


def test_a_category_qbittorrent_refuses_names_the_setting(qbt):
    with pytest.raises(PermanentServiceError, match="Incorrect category name.*DOWNLOAD_CLIENT_CATEGORY"):
        qbt.client().category_save_path("books//audio")


def test_a_client_without_the_categories_api_gets_download_dir(qbt5):
    qbt5.categories_api = False  # qBittorrent before 4.1.4: the add creates the category itself
    client, (info_hash, magnet) = QBittorrentClient(qbt5.url, qbt5.username, qbt5.password), _magnet()
    client.add(magnet=magnet, category="audiobooks", tags=request_tags("req-45"), save_path="/srv/downloads")
    assert client.categories() is None and qbt5.categories == {"audiobooks": ""}
    assert client_labels(client, info_hash)["save_path"] == "/srv/downloads"


# --- Transmission: the category and the tags are its labels (3.00: set with torrent-set) ----------------------


@pytest.mark.parametrize("category,labels", [
    ("readmeabook", ["readmeabook", "request-req-44"]),
    ("audiobooks", ["audiobooks", "readmeabook", "request-req-44"]),
])
def test_transmission_labels_the_torrent_with_the_category_and_tags(transmission, category, labels):
    client = TransmissionClient(transmission.url, transmission.username, transmission.password)
    info_hash, magnet = _magnet()
    target = str(transmission.download_dir / "rmab")
    client.add(magnet=magnet, category=category, tags=request_tags("req-44"), save_path=target)
    assert client_labels(client, info_hash) == {"labels": labels, "save_path": target}

"""Where a new torrent goes in the download client and how it is labelled there (pure, no I/O).

Every torrent goes into the category DOWNLOAD_CLIENT_CATEGORY with the tags `readmeabook` (the app owns it)
and `request-<id>` (which request it serves). In qBittorrent a category may carry its own save path (and,
through automatic torrent management, its own incomplete folder): then that path decides and no `savepath`
is sent. Only a category without one gets DOWNLOAD_DIR as `savepath`. Transmission has no categories: the
category and the tags become its labels (3.00 accepts them in torrent-set and refuses duplicates and commas).
"""
from __future__ import annotations

import re

OWNER_TAG = "readmeabook"

# qBittorrent's own rule (Session::isValidCategoryName): no backslash, no leading or trailing '/', no '//'
# ('/' nests subcategories). A comma is refused too: Transmission labels and qBittorrent tags cannot hold one.
_QBITTORRENT_CATEGORY = re.compile(r"^([^\\/]|[^\\/]([^\\/]|/(?=[^/]))*[^\\/])$")


def parse_category(raw: str) -> str:
    """DOWNLOAD_CLIENT_CATEGORY → the category name; ValueError saying what is wrong with it."""
    name = raw.strip()
    if not name:
        raise ValueError("must name a category, e.g. readmeabook")
    if "," in name or any(ord(ch) < 32 for ch in name):
        raise ValueError(f"{name!r}: a category cannot contain a comma or control characters")
    if not _QBITTORRENT_CATEGORY.match(name):
        raise ValueError(f"{name!r}: a category cannot contain '\\', start or end with '/', or contain '//'")
    return name


def request_tags(request_id: str) -> list[str]:
    """The tags of a request's torrent: the app's own tag, then the request's."""
    return [OWNER_TAG, f"request-{request_id}"]


def transmission_labels(category: str, tags: list[str]) -> list[str]:
    """Transmission's labels: the category, then the tags, each once (the daemon refuses duplicates), empty
    ones dropped (it refuses those too)."""
    return list(dict.fromkeys(label.strip() for label in [category, *tags] if label.strip()))


def qbittorrent_location(category_save_path: str, save_path: str | None) -> dict[str, str]:
    """The torrents/add fields that decide where a qBittorrent torrent goes.

    `category_save_path` is the category's own save path as /torrents/categories reports it ("" when it has
    none). A category with a save path keeps it: automatic torrent management is asked for, so the category's
    save path and incomplete folder apply whatever the client's default mode. Otherwise `save_path`
    (DOWNLOAD_DIR as the client names it) is sent with manual management, which qBittorrent 4.x would
    otherwise ignore when its default mode is automatic; with neither, the client's defaults decide.
    """
    if category_save_path.strip():
        return {"autoTMM": "true"}
    if save_path:
        return {"savepath": save_path, "autoTMM": "false"}
    return {}


def save_folder(category: str, category_save_path: str, download_dir: str | None, default_save_path: str
                ) -> tuple[str, str]:
    """Where the client saves a new torrent, as it names the folder, and what decided it (for the health check):
    the category's own save path (a relative one lies under the default save path), else DOWNLOAD_DIR as the
    client names it, else the client's default save path."""
    own = category_save_path.strip()
    if own:
        absolute = own.startswith("/") or bool(re.match(r"^[A-Za-z]:[\\/]", own))
        path = own if absolute else f"{default_save_path.rstrip('/')}/{own}"
        return path, f"the save path of category {category!r}"
    if download_dir:
        return download_dir, "DOWNLOAD_DIR"
    return default_save_path, "the client's default save path"

"""One probe per integration (Prowlarr, the download client, Plex): ask the service its version through the
thin clients, with the caller's timeout, and the follow-up questions whose answers become a warning about
our settings (failing indexers, the client's save path, Plex's library folders). A probe returns the
version or an Answer and raises ServiceError; app/integrations/health.py turns that into a CheckResult.
Also the secret-free, bounded text of an error (`error_text`) and each integration's shown name (`label`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from app.integrations.errors import ServiceError
from app.pipeline import health_rules
from app.pipeline.health_rules import Finding

MAX_ERROR_CHARS = 300


def label(name: str, settings) -> str:
    if name == "download_client":
        return "Transmission" if settings.download_client == "transmission" else "qBittorrent"
    return {"prowlarr": "Prowlarr", "plex": "Plex"}.get(name, name)


@dataclass(frozen=True)
class Answer:
    """What a probe found when the service answered: its version, and a warning about our settings (with the
    fix for it); several problems are joined into one warning, their fixes into one line."""
    version: str
    warning: str | None = None
    fix: str | None = None

    @classmethod
    def of(cls, version: str, findings: Iterable[Finding]) -> Answer:
        problems = [f for f in findings if not f.ok]
        return cls(version, " ".join(f.message for f in problems) or None,
                   " · ".join(f.fix for f in problems if f.fix) or None)


def _prowlarr_version(settings, timeout: float) -> Answer:
    from app.integrations.prowlarr import ProwlarrClient

    client = ProwlarrClient(settings.prowlarr_url, settings.prowlarr_api_key, timeout=timeout)
    version = client.version()
    return Answer.of(version, [_extra_check(lambda: health_rules.failing_indexers(client.failing_indexers()),
                                            "which indexers are failing")])


def _download_client_version(settings, timeout: float) -> Answer:
    # A fresh client with the short timeout (the pipeline's shared one waits 15 s); a login is part
    # of what is checked.
    if settings.download_client == "transmission":
        from app.integrations.transmission import TransmissionClient

        client: Any = TransmissionClient(settings.download_client_url, settings.download_client_username,
                                         settings.download_client_password, timeout=timeout)
    else:
        from app.integrations.qbittorrent import QBittorrentClient

        client = QBittorrentClient(settings.download_client_url, settings.download_client_username,
                                   settings.download_client_password, timeout=timeout)
    version = client.version()
    return Answer.of(version, [_extra_check(lambda: _save_path_finding(client, settings), "where it saves")])


def _extra_check(finding: Callable[[], Finding], what: str) -> Finding:
    """A question asked after the version answered: its failure (an older service without that endpoint, a
    hiccup) is a warning of its own, not the integration being down."""
    try:
        return finding()
    except ServiceError as exc:
        return Finding(health_rules.WARNING, f"It answered, but not {what}: {error_text(exc)}")


def _save_path_finding(client: Any, settings) -> health_rules.Finding:
    """Is the folder the client saves into visible here (REMOTE_PATH_MAPPINGS)? The category is only read,
    never created, by a check."""
    from pathlib import Path

    from app.library.remote_paths import to_client, to_local
    from app.pipeline.torrent_placement import save_folder

    categories = client.categories() if hasattr(client, "categories") else None
    category_path = (categories or {}).get(settings.download_client_category, "")
    download_dir = to_client(settings.download_dir, settings.remote_path_mappings) if settings.download_dir else None
    default = client.default_save_path() if category_path or not download_dir else ""
    folder, where = save_folder(settings.download_client_category, category_path, download_dir, default)
    local = to_local(folder, settings.remote_path_mappings)
    return health_rules.save_path_visible(label("download_client", settings), folder, where, local,
                                          local.startswith("/") and Path(local).is_dir(), local != folder)


def _plex_version(settings, timeout: float) -> Answer:
    from app.integrations.plex import PlexClient
    from app.library.plex_paths import library_fix, library_warning

    client = PlexClient(settings.plex_url, settings.plex_token, timeout=timeout)
    version = str(client.identity().get("version") or "")
    warning = fix = None
    # /identity needs no token: one item of the section proves the token (and PLEX_LIBRARY_ID) work.
    if settings.plex_library_id:
        client.recently_added(settings.plex_library_id, count=1)
        if settings.media_dir:  # do imports land where Plex's section looks (PLEX_PATH_MAPPINGS)?
            locations = client.section_locations(settings.plex_library_id)
            warning = library_warning(settings.media_dir, settings.plex_path_mappings,
                                      locations)
            fix = library_fix(settings.media_dir, locations) if warning else None
    return Answer(version, warning, fix)


PROBES: dict[str, Callable[[Any, float], str | Answer]] = {
    "prowlarr": _prowlarr_version, "download_client": _download_client_version, "plex": _plex_version}


def error_text(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A short, secret-free message: a client's classified message without its service prefix,
    anything else as its type and text; redacted (configured secrets, key=value pairs, URL passwords)."""
    from app.jobs.redact import redact_text

    if isinstance(exc, ServiceError):
        text = str(exc)
        prefix = f"{exc.service}: "
        text = text[len(prefix):] if text.startswith(prefix) else text
    else:
        text = f"{type(exc).__name__}: {exc}"
    return bounded(redact_text(text, tuple(secrets)), MAX_ERROR_CHARS)


def bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"

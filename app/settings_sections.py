"""The sections of /admin/settings and the setup wizard, and each section's Test.

A Test checks the values as typed (before they are saved) through the integrations health checks
(app/integrations/health.check), and lists what the admin picks from: Prowlarr's indexers (for the seeding
limits), Plex's library sections (for PLEX_LIBRARY_ID). The paths' Test checks the folders.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from app.config import Settings
from app.integrations import health
from app.integrations.errors import ServiceError
from app.settings_rules import FOLDER_NAMES, folder_problem

SECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "prowlarr": ("Prowlarr", ("PROWLARR_URL", "PROWLARR_API_KEY", "INDEXER_SEEDING_MINUTES",
                              "INDEXER_SEEDING_RATIO")),
    "download_client": ("Download client", ("DOWNLOAD_CLIENT", "DOWNLOAD_CLIENT_URL", "DOWNLOAD_CLIENT_USERNAME",
                                            "DOWNLOAD_CLIENT_PASSWORD", "DOWNLOAD_CLIENT_CATEGORY",
                                            "MONITOR_POLL_SECONDS", "DOWNLOAD_STALL_LIMIT_SECONDS")),
    "paths": ("Paths", ("DOWNLOAD_DIR", "MEDIA_DIR", "ORGANIZE_MODE", "ORGANIZE_PATH_TEMPLATE",
                        "REMOTE_PATH_MAPPINGS", "TAG_FILES")),
    "plex": ("Plex", ("PLEX_URL", "PLEX_TOKEN", "PLEX_LIBRARY_ID", "PLEX_PATH_MAPPINGS")),
}
# Settings picked from a list on the page (their parsers accept exactly these).
CHOICES = {"DOWNLOAD_CLIENT": ("qbittorrent", "transmission"), "ORGANIZE_MODE": ("copy", "hardlink", "move")}
# The per-indexer fields the Prowlarr section shows after a Test (one pair per indexer Prowlarr lists), folded
# into the setting's `Name=value,…` text on Save: form field prefix → setting.
PER_INDEXER_FIELDS = {"seeding_minutes:": "INDEXER_SEEDING_MINUTES", "seeding_ratio:": "INDEXER_SEEDING_RATIO"}
# Which integrations health check a section's Test runs.
HEALTH_CHECKS = {"prowlarr": "prowlarr", "download_client": "download_client", "plex": "plex"}


@dataclass
class TestOutcome:
    ok: bool
    message: str
    indexers: list[str] = field(default_factory=list)          # Prowlarr's, for the seeding limits
    sections: list[tuple[str, str]] = field(default_factory=list)  # Plex's (key, title), for PLEX_LIBRARY_ID


def run_test(section: str, candidate: Settings) -> TestOutcome:
    """The section's Test over `candidate` (the settings as they would be with the form's values)."""
    if section == "paths":
        problems = [f"{name}: {problem}" for name in FOLDER_NAMES
                    if (problem := folder_problem(name, getattr(candidate, name.lower())))]
        if problems:
            return TestOutcome(False, "; ".join(problems))
        return TestOutcome(True, f"Folders usable: DOWNLOAD_DIR {candidate.download_dir or '(unset)'}, "
                                 f"MEDIA_DIR {candidate.media_dir or '(unset)'}")
    result = health.check(HEALTH_CHECKS[section], candidate)
    if not result.configured:
        return TestOutcome(False, f"{result.label} is not configured: fill in its URL (and key or token).")
    if not result.ok:
        return TestOutcome(False, f"{result.label} failed the test: {result.error}")
    message = f"{result.label} {result.version or ''} answered in {result.latency_ms} ms.".replace("  ", " ")
    if result.warning:
        message += f" Warning: {result.warning}"
    outcome = TestOutcome(True, message)
    try:
        if section == "prowlarr":
            from app.integrations.prowlarr import ProwlarrClient

            names = ProwlarrClient(candidate.prowlarr_url, candidate.prowlarr_api_key,
                                   timeout=health.CHECK_TIMEOUT_SECONDS).indexers()
            # `Name=value,…` cannot hold a name with `,` or `=`: such an indexer gets no fields
            outcome.indexers = [name for name in names if "," not in name and "=" not in name]
            outcome.message += f" Indexers: {', '.join(names) or 'none'}."
        elif section == "download_client":
            outcome.message += f" Category: {candidate.download_client_category}."
        elif section == "plex":
            from app.integrations.plex import PlexClient

            outcome.sections = PlexClient(candidate.plex_url, candidate.plex_token,
                                          timeout=health.CHECK_TIMEOUT_SECONDS).sections()
            outcome.message += f" Sections: {', '.join(f'{t} ({k})' for k, t in outcome.sections) or 'none'}."
    except ServiceError as exc:
        return TestOutcome(False, f"{result.label}: {health.error_text(exc, candidate.secret_values())}")
    return outcome


def per_indexer_entries(text: str) -> dict[str, str]:
    """`Tracker A=1440,Tracker B=0` → {"Tracker A": "1440", "Tracker B": "0"} (entries without `=` are left to
    the setting's parser, which names them)."""
    entries = {}
    for part in text.split(","):
        name, equals, value = part.partition("=")
        if equals and name.strip():
            entries[name.strip()] = value.strip()
    return entries


def merge_per_indexer(text: str, edits: dict[str, str]) -> str:
    """The setting's text with the per-indexer fields applied: a value sets (or replaces, names compared
    case-insensitively) that indexer's entry, a blank one removes it; other entries stay as written."""
    entries = per_indexer_entries(text)
    for name, value in edits.items():
        for existing in [e for e in entries if e.lower() == name.strip().lower()]:
            del entries[existing]
        if value.strip():
            entries[name.strip()] = value.strip()
    return ",".join(f"{name}={value}" for name, value in entries.items())

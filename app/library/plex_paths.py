"""Library folders as Plex sees them (PLEX_PATH_MAPPINGS), and where a refresh after an import may point.

Plex in another container (the usual Docker setup) sees the library under another name: the worker writes
/mnt/media/Author/Title, Plex knows it as /data/audiobooks/Author/Title. PLEX_PATH_MAPPINGS is written
local=plex (`/mnt/media=/data/audiobooks`) and follows the rules of REMOTE_PATH_MAPPINGS (the same parser,
app/library/remote_paths.py). Plex answers 200 to a refresh of any path but scans only a folder inside one
of the section's Locations, so a folder outside them is never sent: the whole section is refreshed
instead, with a warning that names the setting. Pure.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.library.remote_paths import PathMapping, Syntax, is_within, parse_mappings, to_client

PLEX_SYNTAX = Syntax("PLEX_PATH_MAPPINGS", "plex", local_first=True, example="/mnt/media=/data/audiobooks")
SETTING = PLEX_SYNTAX.setting

Mappings = tuple[PathMapping, ...] | list[PathMapping]


def parse_plex_mappings(raw: str) -> tuple[PathMapping, ...]:
    """`local=plex;…` → mappings; raises ValueError naming the bad entry (the start stops)."""
    return parse_mappings(raw, PLEX_SYNTAX)


def plex_path(local: str, mappings: Mappings) -> str:
    """A folder on this machine → the same folder as Plex names it (unchanged when no mapping covers it)."""
    return to_client(local, mappings)


@dataclass(frozen=True)
class RefreshPlan:
    path: str | None       # the folder to refresh, as Plex names it; None: refresh the whole section
    plex_folder: str       # the imported folder as Plex names it (mapped or not)
    warning: str | None    # why the whole section is refreshed, and the setting that fixes it


def plan_refresh(local_folder: str, mappings: Mappings, locations: Sequence[str],
                 media_dir: str = "") -> RefreshPlan:
    """Refresh `local_folder` in Plex by its Plex name when that lies inside one of the section's
    `locations` (Plex's `Location` paths); otherwise the whole section, with a warning."""
    folder = plex_path(local_folder, mappings)
    if any(is_within(folder, location) for location in locations):
        return RefreshPlan(folder, folder, None)
    return RefreshPlan(None, folder, outside_warning(local_folder, folder, locations, media_dir))


def library_warning(media_dir: str, mappings: Mappings, locations: Sequence[str]) -> str | None:
    """The health check's question: will books imported under `media_dir` lie inside the section?"""
    return plan_refresh(media_dir, mappings, locations, media_dir).warning


def library_fix(media_dir: str, locations: Sequence[str]) -> str:
    """The health check's one-line fix for library_warning: the mapping to add, with the section's folder
    when it has just one."""
    return f"Set {SETTING}={_example(media_dir, locations)} (local=plex: MEDIA_DIR here = the folder Plex sees)"


def _example(media_dir: str, locations: Sequence[str]) -> str:
    return f"{media_dir or '/mnt/media'}={locations[0] if len(locations) == 1 else '/data/audiobooks'}"


def outside_warning(local: str, plex_folder: str, locations: Sequence[str], media_dir: str = "") -> str:
    """`local` (Plex name `plex_folder`) is in none of the section's folders: what happens, and the fix."""
    seen_as = "" if plex_folder == local else f" (mapped by {SETTING} to {plex_folder})"
    folders = ", ".join(locations) if locations else "none"
    return (f"{local}{seen_as} is outside the Plex library section's folders ({folders}): Plex would scan "
            f"nothing there, so imports refresh the whole section instead of the book's folder. Map the "
            f"folder as Plex sees it with {SETTING} (local=plex), e.g. {SETTING}={_example(media_dir, locations)}")

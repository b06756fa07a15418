"""Path mappings: the same folder under two names, here and on another machine.

REMOTE_PATH_MAPPINGS="/downloads=/mnt/seedbox/downloads;/data=/srv/data" reads "what the download client
calls /downloads is /mnt/seedbox/downloads here"; PLEX_PATH_MAPPINGS="/mnt/media=/data/audiobooks" reads
"what is /mnt/media here, Plex calls /data/audiobooks" (written the other way round: local=plex). One
parser (`parse_mappings`, told the setting's `Syntax`) and the same rules for both: the longest matching
prefix wins, and prefixes match whole path components only (/downloads2/x is not under /downloads). A path
no mapping covers is returned unchanged (both sides see the same folders). Pure, except
`missing_local_dirs`.

The other machine's paths may be Windows paths (`D:\\Torrents=/mnt/d/torrents`): a mapping whose remote
side starts with a drive letter compares components case-insensitively and splits on both `\\` and `/`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

_WINDOWS = re.compile(r"^[A-Za-z]:([\\/]|$)")


@dataclass(frozen=True)
class Syntax:
    """How a mapping setting is written: its name, what the other machine is called, which side comes first."""
    setting: str
    remote_name: str      # "client", "plex": the other machine, in error messages
    local_first: bool     # local=remote (PLEX_PATH_MAPPINGS) rather than remote=local
    example: str

    def shape(self) -> str:
        return f"local={self.remote_name}" if self.local_first else f"{self.remote_name}=local"


CLIENT_SYNTAX = Syntax("REMOTE_PATH_MAPPINGS", "client", local_first=False,
                       example="/downloads=/mnt/seedbox/downloads")
SETTING = CLIENT_SYNTAX.setting


@dataclass(frozen=True)
class PathMapping:
    remote: str   # the folder as the other machine (download client, Plex) names it
    local: str    # the same folder as this machine sees it (absolute POSIX path)
    syntax: Syntax = field(default=CLIENT_SYNTAX, compare=False)

    def __str__(self) -> str:
        return f"{self.local}={self.remote}" if self.syntax.local_first else f"{self.remote}={self.local}"


def _is_windows(path: str) -> bool:
    return bool(_WINDOWS.match(path))


def _parts(path: str, windows: bool) -> tuple[str, ...]:
    """Path components of `path`, normalised for comparison ('.' and repeated separators dropped)."""
    if windows:
        return tuple(part.lower() for part in PureWindowsPath(path).parts)
    return PurePosixPath(path).parts


def parse_mappings(raw: str, syntax: Syntax = CLIENT_SYNTAX) -> tuple[PathMapping, ...]:
    """`remote=local;remote=local` (or `local=remote;…` as `syntax` says) → mappings; raises ValueError
    naming the bad entry.

    Both sides must be absolute; a remote folder may appear once. Empty entries (a trailing `;`) are ignored.
    """
    mappings: list[PathMapping] = []
    seen: set[tuple[str, ...]] = set()
    name = syntax.remote_name
    for entry in (part.strip() for part in raw.split(";")):
        if not entry:
            continue
        first, separator, second = (side.strip() for side in entry.partition("="))
        if not separator or not first or not second:
            raise ValueError(f"{entry!r} is not {syntax.shape()} (e.g. {syntax.example})")
        local, remote = (first, second) if syntax.local_first else (second, first)
        if not (remote.startswith("/") or _is_windows(remote)):
            raise ValueError(f"{entry!r}: the {name} path {remote!r} must be absolute")
        if not local.startswith("/"):
            raise ValueError(f"{entry!r}: the local path {local!r} must be absolute")
        if ".." in _parts(remote, _is_windows(remote)) or ".." in PurePosixPath(local).parts:
            raise ValueError(f"{entry!r}: '..' is not allowed in a mapping")
        key = _parts(remote, _is_windows(remote))
        if key in seen:
            raise ValueError(f"{entry!r}: the {name} path {remote!r} is mapped twice")
        seen.add(key)
        mappings.append(PathMapping(remote, str(PurePosixPath(local)), syntax))
    return tuple(mappings)


def is_within(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or lies below it, by whole components (Windows rules for a drive path)."""
    return _below(path, folder) is not None


def _below(path: str, folder: str) -> tuple[str, ...] | None:
    """The components of `path` below `folder`, or None when `path` is not under it."""
    windows = _is_windows(folder)
    if windows != _is_windows(path):
        return None
    prefix, parts = _parts(folder, windows), _parts(path, windows)
    if parts[:len(prefix)] != prefix:
        return None
    # keep the original spelling (case) of the remaining components
    original = PureWindowsPath(path).parts if windows else PurePosixPath(path).parts
    return original[len(prefix):]


def to_local(path: str, mappings: tuple[PathMapping, ...] | list[PathMapping]) -> str:
    """`path` as the other machine names it → the path on this machine (unchanged when no mapping covers it)."""
    best: tuple[int, PathMapping, tuple[str, ...]] | None = None
    for mapping in mappings:
        rest = _below(path, mapping.remote)
        if rest is None:
            continue
        depth = len(_parts(mapping.remote, _is_windows(mapping.remote)))
        if best is None or depth > best[0]:
            best = (depth, mapping, rest)
    if best is None:
        return path
    _, mapping, rest = best
    return str(PurePosixPath(mapping.local, *rest))


def to_client(path: str, mappings: tuple[PathMapping, ...] | list[PathMapping]) -> str:
    """The reverse: a local path (e.g. DOWNLOAD_DIR as a save path) → how the other machine names it."""
    best: tuple[int, PathMapping, tuple[str, ...]] | None = None
    parts = PurePosixPath(path).parts
    for mapping in mappings:
        prefix = PurePosixPath(mapping.local).parts
        if parts[:len(prefix)] == prefix and (best is None or len(prefix) > best[0]):
            best = (len(prefix), mapping, parts[len(prefix):])
    if best is None:
        return path
    _, mapping, rest = best
    if _is_windows(mapping.remote):
        return str(PureWindowsPath(mapping.remote, *rest))
    return str(PurePosixPath(mapping.remote, *rest))


def missing_local_dirs(mappings: tuple[PathMapping, ...] | list[PathMapping]) -> list[str]:
    """Warnings for mappings whose local folder does not exist here (a typo, or a share not mounted yet)."""
    return [f"{m.syntax.setting}: the local folder {m.local} of mapping {m} does not exist (not mounted yet?)"
            for m in mappings if not Path(m.local).is_dir()]

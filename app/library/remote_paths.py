"""Remote path mappings: translate a path reported by the download client into a path on this machine.

REMOTE_PATH_MAPPINGS="/downloads=/mnt/seedbox/downloads;/data=/srv/data" reads "what the client calls
/downloads is /mnt/seedbox/downloads here". The longest matching client prefix wins, and prefixes match
whole path components only: /downloads2/x is not under /downloads. A path no mapping covers is returned
unchanged (the client and this machine see the same folders). Pure, except `missing_local_dirs`.

Client paths may be Windows paths (`D:\\Torrents=/mnt/d/torrents`): a mapping whose client side starts
with a drive letter compares components case-insensitively and splits on both `\\` and `/`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

SETTING = "REMOTE_PATH_MAPPINGS"
_WINDOWS = re.compile(r"^[A-Za-z]:([\\/]|$)")


@dataclass(frozen=True)
class PathMapping:
    client: str   # the folder as the download client reports it
    local: str    # the same folder as this machine sees it (absolute POSIX path)

    def __str__(self) -> str:
        return f"{self.client}={self.local}"


def _is_windows(path: str) -> bool:
    return bool(_WINDOWS.match(path))


def _parts(path: str, windows: bool) -> tuple[str, ...]:
    """Path components of `path`, normalised for comparison ('.' and repeated separators dropped)."""
    if windows:
        return tuple(part.lower() for part in PureWindowsPath(path).parts)
    return PurePosixPath(path).parts


def parse_mappings(raw: str) -> tuple[PathMapping, ...]:
    """`client=local;client=local` → mappings; raises ValueError naming the bad entry.

    Both sides must be absolute; a client folder may appear once. Empty entries (a trailing `;`) are ignored.
    """
    mappings: list[PathMapping] = []
    seen: set[tuple[str, ...]] = set()
    for entry in (part.strip() for part in raw.split(";")):
        if not entry:
            continue
        client, separator, local = (side.strip() for side in entry.partition("="))
        if not separator or not client or not local:
            raise ValueError(f"{entry!r} is not client=local (e.g. /downloads=/mnt/seedbox/downloads)")
        if not (client.startswith("/") or _is_windows(client)):
            raise ValueError(f"{entry!r}: the client path {client!r} must be absolute")
        if not local.startswith("/"):
            raise ValueError(f"{entry!r}: the local path {local!r} must be absolute")
        if ".." in _parts(client, _is_windows(client)) or ".." in PurePosixPath(local).parts:
            raise ValueError(f"{entry!r}: '..' is not allowed in a mapping")
        key = _parts(client, _is_windows(client))
        if key in seen:
            raise ValueError(f"{entry!r}: the client path {client!r} is mapped twice")
        seen.add(key)
        mappings.append(PathMapping(client, str(PurePosixPath(local))))
    return tuple(mappings)


def _remainder(path: str, mapping: PathMapping) -> tuple[str, ...] | None:
    """The components of `path` below `mapping.client`, or None when `path` is not under it."""
    windows = _is_windows(mapping.client)
    if windows != _is_windows(path):
        return None
    prefix, parts = _parts(mapping.client, windows), _parts(path, windows)
    if parts[:len(prefix)] != prefix:
        return None
    # keep the original spelling (case) of the remaining components
    original = PureWindowsPath(path).parts if windows else PurePosixPath(path).parts
    return original[len(prefix):]


def to_local(path: str, mappings: tuple[PathMapping, ...] | list[PathMapping]) -> str:
    """`path` as reported by the client → the path on this machine (unchanged when no mapping covers it)."""
    best: tuple[int, PathMapping, tuple[str, ...]] | None = None
    for mapping in mappings:
        rest = _remainder(path, mapping)
        if rest is None:
            continue
        depth = len(_parts(mapping.client, _is_windows(mapping.client)))
        if best is None or depth > best[0]:
            best = (depth, mapping, rest)
    if best is None:
        return path
    _, mapping, rest = best
    return str(PurePosixPath(mapping.local, *rest))


def to_client(path: str, mappings: tuple[PathMapping, ...] | list[PathMapping]) -> str:
    """The reverse: a local path (e.g. DOWNLOAD_DIR as a save path) → how the client must be told it."""
    best: tuple[int, PathMapping, tuple[str, ...]] | None = None
    parts = PurePosixPath(path).parts
    for mapping in mappings:
        prefix = PurePosixPath(mapping.local).parts
        if parts[:len(prefix)] == prefix and (best is None or len(prefix) > best[0]):
            best = (len(prefix), mapping, parts[len(prefix):])
    if best is None:
        return path
    _, mapping, rest = best
    if _is_windows(mapping.client):
        return str(PureWindowsPath(mapping.client, *rest))
    return str(PurePosixPath(mapping.client, *rest))


def missing_local_dirs(mappings: tuple[PathMapping, ...] | list[PathMapping]) -> list[str]:
    """Warnings for mappings whose local folder does not exist here (a typo, or a share not mounted yet)."""
    return [f"{SETTING}: the local folder {m.local} of mapping {m} does not exist (not mounted yet?)"
            for m in mappings if not Path(m.local).is_dir()]

"""Copy (or hardlink, or move) a finished download into the media library, safely and idempotently.

Each file is written under a temporary name in the target folder and renamed into place, so a crash
never leaves a half-written file with a final name. Nothing outside the download path is read (no
`..`, no symlink that points out, no pipe or device), nothing outside the read root (DOWNLOAD_DIR) even
when a file changes after discovery, and nothing is written outside MEDIA_DIR. Names fit in 255 bytes.

With `tags`, each copy is tagged (app/library/tags.py) while it is still the temporary file, before the
rename: the source is only ever read. Hardlinks are never tagged (they are the torrent's own file).
"""
from __future__ import annotations

import errno
import filecmp
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from app.jobs import fence
from app.library.paths import UNRESOLVABLE, UnsafePathError, inside, resolved, sanitize, with_counter
from app.library.tags import TagError, TagSet, for_file_count, is_taggable, write_tags

AUDIO_EXTENSIONS = {".m4b", ".m4a", ".mp3", ".mp4", ".aa", ".aax", ".flac", ".ogg"}
COVER_NAMES = {"cover", "folder", "art"}
COVER_EXTENSIONS = {".jpg", ".jpeg", ".png"}
TEMP_PREFIX = ".rmab-partial-"


class NoAudioFiles(Exception):
    """The download holds no audio file (yet): the import is retried later."""


@dataclass
class OrganizeResult:
    target: Path
    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cover: str | None = None
    tagged: list[str] = field(default_factory=list)

    @property
    def audio_files(self) -> list[str]:
        return self.copied + self.skipped


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def discover(download_path: Path) -> tuple[list[Path], Path | None, list[str]]:
    """Audio files and the cover under `download_path`; the refused entries (symlinks out, odd names)."""
    root = Path(download_path)
    refused: list[str] = []
    if root.is_symlink() and not inside(root.parent, root):
        raise UnsafePathError(f"download path {root} is a symlink that points elsewhere")
    if root.is_file():
        return ([root] if _is_audio(root) else []), None, refused
    audio: list[Path] = []
    cover: Path | None = None
    for current, dirs, files in os.walk(root, followlinks=False):
        base = Path(current)
        for name in sorted(dirs):
            if (base / name).is_symlink():
                refused.append(f"{(base / name).relative_to(root)}: symlink to a folder, not followed")
        for name in sorted(files):
            path = base / name
            is_cover = path.stem.lower() in COVER_NAMES and path.suffix.lower() in COVER_EXTENSIONS
            if path.is_symlink() and not inside(root, path):
                why = UNRESOLVABLE if resolved(path) is None else "pointing outside the download"
                refused.append(f"{path.relative_to(root)}: symlink {why}")
            elif not (_is_audio(path) or is_cover):
                continue
            elif not path.is_file():  # a pipe would block the copy, a device would never end
                refused.append(f"{path.relative_to(root)}: not a regular file")
            elif is_cover:
                cover = path
            else:
                audio.append(path)
    return sorted(audio), cover, refused


def _target_names(files: list[Path], root: Path) -> dict[Path, str]:
    """Flat names in the target; files with the same name in different sub-folders get the folder as prefix."""
    counts: dict[str, int] = {}
    for path in files:
        counts[sanitize(path.name).lower()] = counts.get(sanitize(path.name).lower(), 0) + 1
    names: dict[Path, str] = {}
    for path in files:
        name = sanitize(path.name)
        if counts[name.lower()] > 1 and path.parent != root:
            prefix = " - ".join(sanitize(p) for p in path.parent.relative_to(root).parts if sanitize(p))
            name = sanitize(f"{prefix} - {path.name}") if prefix else name
        names[path] = name or f"track-{len(names) + 1:02d}{path.suffix.lower()}"  # its place in the order
    seen: dict[str, int] = {}
    for path, name in list(names.items()):  # still equal after prefixing: number them
        key = name.lower()
        if key in seen:
            seen[key] += 1
            names[path] = with_counter(name, seen[key])
        else:
            seen[key] = 0
    return names


def cover_candidates(download_path: Path, read_root: Path | None = None) -> list[Path]:
    """Images in a download folder that may be the book's cover, best first: cover/folder/art images, then
    the other .jpg/.jpeg/.png by size, largest first. Symlinks, non-regular files and anything outside
    `read_root` are left out. A single-file download has none: its folder is shared with other torrents."""
    root = Path(download_path)
    if root.is_symlink() or not root.is_dir() or (read_root is not None and not inside(read_root, root)):
        return []
    found: list[tuple[bool, int, str, Path]] = []
    for current, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(current) / name
            if path.suffix.lower() not in COVER_EXTENSIONS or path.is_symlink() or not path.is_file():
                continue
            if _outside_read_root(path, read_root):
                continue
            found.append((path.stem.lower() not in COVER_NAMES, -path.stat().st_size, str(path), path))
    return [path for *_key, path in sorted(found)]


def _tag_copy(source: Path, temp: Path, name: str, tags: TagSet, result: OrganizeResult) -> bool:
    """Tag the temporary copy `temp` of `source`; False (with a warning) leaves it an untagged copy."""
    if os.stat(temp).st_nlink != 1:  # belt and braces: never write into a file another name shares
        result.warnings.append(f"{name}: tags not written (the file has other hard links)")
        return False
    try:
        write_tags(temp, tags)
    except TagError as exc:
        result.warnings.append(f"{name}: tags not written, imported untagged (mutagen cannot read it: {exc})")
        shutil.copy2(source, temp)  # the failed write may have changed part of it: start from the source again
        return False
    result.tagged.append(name)
    return True


def _place(source: Path, target: Path, mode: str, result: OrganizeResult, temp_tag: str = "",
           tags: TagSet | None = None) -> None:
    """Put one file at `target` through a temporary name; identical files already there are skipped
    (with `tags`: identical to the tagged copy). A copy is tagged before its rename, a hardlink never."""
    if target.exists():
        if target.stat().st_size == source.stat().st_size and filecmp.cmp(source, target, shallow=False):
            result.skipped.append(target.name)
            return
    temp = target.with_name(f"{TEMP_PREFIX}{temp_tag}-{uuid.uuid4().hex}{target.suffix}")
    try:
        if mode == "hardlink":
            try:
                os.link(source, temp)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                result.warnings.append(f"{source.name}: hardlink impossible ({exc.strerror}); copied instead")
                shutil.copy2(source, temp)
        else:
            shutil.copy2(source, temp)
            if tags is not None and is_taggable(target) and _tag_copy(source, temp, target.name, tags, result):
                if target.exists() and filecmp.cmp(temp, target, shallow=False):  # a re-run: already tagged
                    result.skipped.append(target.name)
                    return
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()
    if mode == "move":
        source.unlink()
    result.copied.append(target.name)


STALE_TEMP_SECONDS = 3600


def sweep_temp_files(target: Path, temp_tag: str, now: float | None = None) -> list[str]:
    """Remove temporary files a crashed run left in `target`: those of an earlier run for the same
    `temp_tag` (the request: its earlier runs are over, the job system fences them out) and anyone's
    older than an hour. A concurrent run's fresh temp file of another request is left alone."""
    now = time.time() if now is None else now
    removed = []
    for stale in target.glob(f"{TEMP_PREFIX}*"):
        try:
            ours = bool(temp_tag) and stale.name.startswith(f"{TEMP_PREFIX}{temp_tag}-")
            if ours or now - stale.stat().st_mtime > STALE_TEMP_SECONDS:
                stale.unlink()
                removed.append(stale.name)
        except FileNotFoundError:
            continue
    return removed


def _outside_read_root(source: Path, read_root: Path | None) -> str | None:
    """Why `source` must not be read, or None. Checked right before each file is read, symlinks resolved,
    so that a file swapped for a link out after discovery is caught. (A swap between this check and the
    open is still possible: the window is microseconds, not the length of the import.)"""
    if read_root is not None and not inside(read_root, source):
        return f"{source.name}: resolves outside DOWNLOAD_DIR, not read"
    return None


def organize(download_path: Path, target: Path, media_dir: Path, mode: str = "copy",
             temp_tag: str = "", read_root: Path | None = None, tags: TagSet | None = None) -> OrganizeResult:
    """Place the audio files and the cover of `download_path` into `target` (inside `media_dir`).

    `temp_tag` names this import's temporary files (the request id), so that a retry removes what an
    interrupted run of the same import left behind before it writes anything. `read_root` (DOWNLOAD_DIR)
    confines every read: the download path and each file in it, symlinks resolved. `tags` are written into
    each copied audio file (not in hardlink mode: a hardlink is the torrent's own file)."""
    if not inside(media_dir, target):
        raise UnsafePathError(f"target {target} is outside MEDIA_DIR")
    download_path = Path(download_path)
    if resolved(download_path) is None:
        raise UnsafePathError(f"download path {download_path} {UNRESOLVABLE}")
    if read_root is not None and not inside(read_root, download_path):
        raise UnsafePathError(f"download path {download_path} is outside DOWNLOAD_DIR")
    if not download_path.exists():
        raise FileNotFoundError(errno.ENOENT, "download path does not exist", str(download_path))
    audio, cover, refused = discover(download_path)
    result = OrganizeResult(target=target, refused=refused)
    if not audio:
        raise NoAudioFiles(f"No audiobook files found in {download_path.name}")
    target.mkdir(parents=True, exist_ok=True)
    for name in sweep_temp_files(target, temp_tag):
        result.warnings.append(f"removed {name}, left by an interrupted import")
    root = download_path if download_path.is_dir() else download_path.parent
    file_tags = for_file_count(tags, len(audio)) if tags is not None and mode != "hardlink" else None
    for source, name in _target_names(audio, root).items():
        fence.checkpoint()  # an admin's Stop ends the import between two files (app/jobs/stopping.py)
        destination = target / name
        if not inside(media_dir, destination):  # belt and braces: names are sanitised already
            result.refused.append(f"{name}: would be written outside MEDIA_DIR")
            continue
        if refusal := _outside_read_root(source, read_root):
            result.refused.append(refusal)
            continue
        _place(source, destination, mode, result, temp_tag, file_tags)
    if cover is not None:
        if refusal := _outside_read_root(cover, read_root):
            result.refused.append(refusal)
        else:
            _place(cover, target / "cover.jpg", "copy", OrganizeResult(target=target), temp_tag)  # not audio
            result.cover = "cover.jpg"
    return result

"""Copy (or hardlink, or move) a finished download into the media library, safely and idempotently.

Each file is written under a temporary name in the target folder and renamed into place, so a crash
never leaves a half-written file with a final name. Nothing outside the download path is read (no
`..`, no symlink that points out) and nothing is written outside MEDIA_DIR.
"""
from __future__ import annotations

import errno
import filecmp
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from app.library.paths import UnsafePathError, inside, sanitize

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
            if path.is_symlink() and not inside(root, path):
                refused.append(f"{path.relative_to(root)}: symlink pointing outside the download")
                continue
            if _is_audio(path):
                audio.append(path)
            elif path.stem.lower() in COVER_NAMES and path.suffix.lower() in COVER_EXTENSIONS:
                cover = path
    return sorted(audio), cover, refused


def _target_names(files: list[Path], root: Path) -> dict[Path, str]:
    """Flat names in the target; files with the same name in different sub-folders get the folder as prefix."""
    counts: dict[str, int] = {}
    for path in files:
        counts[sanitize(path.name).lower()] = counts.get(sanitize(path.name).lower(), 0) + 1
    names = {}
    for path in files:
        name = sanitize(path.name)
        if counts[name.lower()] > 1 and path.parent != root:
            prefix = " - ".join(sanitize(p) for p in path.parent.relative_to(root).parts if sanitize(p))
            name = sanitize(f"{prefix} - {path.name}") if prefix else name
        names[path] = name or f"track-{len(names)}{path.suffix.lower()}"
    seen: dict[str, int] = {}
    for path, name in list(names.items()):  # still equal after prefixing: number them
        key = name.lower()
        if key in seen:
            seen[key] += 1
            names[path] = f"{Path(name).stem} ({seen[key]}){Path(name).suffix}"
        else:
            seen[key] = 0
    return names


def _place(source: Path, target: Path, mode: str, result: OrganizeResult) -> None:
    """Put one file at `target` through a temporary name; identical files already there are skipped."""
    if target.exists():
        if target.stat().st_size == source.stat().st_size and filecmp.cmp(source, target, shallow=False):
            result.skipped.append(target.name)
            return
    temp = target.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}{target.suffix}")
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
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()
    if mode == "move":
        source.unlink()
    result.copied.append(target.name)


def organize(download_path: Path, target: Path, media_dir: Path, mode: str = "copy") -> OrganizeResult:
    """Place the audio files and the cover of `download_path` into `target` (inside `media_dir`)."""
    if not inside(media_dir, target):
        raise UnsafePathError(f"target {target} is outside MEDIA_DIR")
    download_path = Path(download_path)
    if not download_path.exists():
        raise FileNotFoundError(errno.ENOENT, "download path does not exist", str(download_path))
    audio, cover, refused = discover(download_path)
    result = OrganizeResult(target=target, refused=refused)
    if not audio:
        raise NoAudioFiles(f"No audiobook files found in {download_path.name}")
    target.mkdir(parents=True, exist_ok=True)
    root = download_path if download_path.is_dir() else download_path.parent
    for source, name in _target_names(audio, root).items():
        destination = target / name
        if not inside(media_dir, destination):  # belt and braces: names are sanitised already
            result.refused.append(f"{name}: would be written outside MEDIA_DIR")
            continue
        _place(source, destination, mode, result)
    if cover is not None:
        _place(cover, target / "cover.jpg", "copy", OrganizeResult(target=target))  # not counted as audio
        result.cover = "cover.jpg"
    for stale in target.glob(f"{TEMP_PREFIX}*"):  # a crash between write and rename left this behind
        stale.unlink()
    return result

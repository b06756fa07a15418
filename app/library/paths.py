"""Target paths: the path template and name sanitising (pure)."""
from __future__ import annotations

import re
from pathlib import Path

TEMPLATE_VARIABLES = {"author", "title", "narrator", "asin", "year"}
DEFAULT_TEMPLATE = "{author}/{title}"
_RESERVED = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
# NAME_MAX of Linux filesystems (ext4, xfs, btrfs, tmpfs): bytes per path component, not characters.
# The organizer's temporary names (`.rmab-partial-<request id>-<32 hex><ext>`, about 90 bytes) do not
# contain the final name, so final names may use all of it.
MAX_NAME_BYTES = 255
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}$")  # a file extension: `.mp3`, `.m4b`, `.jpg`
_JOINER = "\u200d"  # zero-width joiner: at the end of a name it joins nothing
_TRAILING = ". " + _JOINER  # stripped from the end of every name (Windows shares refuse trailing dots/spaces)


class PathTemplateError(ValueError):
    """An invalid ORGANIZE_PATH_TEMPLATE."""


class UnsafePathError(ValueError):
    """A path that would leave the media folder or the download folder."""


def validate_template(template: str) -> str:
    if not template or template.startswith("/") or "\\" in template:
        raise PathTemplateError("path template must be relative, like '{author}/{title}'")
    names = re.findall(r"\{([^{}]*)\}", template)
    unknown = sorted(set(names) - TEMPLATE_VARIABLES)
    if unknown:
        raise PathTemplateError(f"unknown variable(s) {', '.join('{' + u + '}' for u in unknown)}; "
                                f"use {', '.join('{' + v + '}' for v in sorted(TEMPLATE_VARIABLES))}")
    literal = re.sub(r"\{[^{}]*\}", "", template)
    if re.search(r'[<>:"|?*{}]', literal) or ".." in template.split("/"):
        raise PathTemplateError("path template has reserved characters or '..' outside its variables")
    return template


def _encoded(text: str) -> bytes:
    """`text` as Linux stores it in a directory entry (UTF-8; undecodable bytes of a listed name come back)."""
    return text.encode("utf-8", "surrogateescape")


def _writable(text: str) -> str:
    """`text` without characters no file name can hold (lone surrogates, e.g. from a JSON "\\ud800")."""
    try:
        _encoded(text)
        return text
    except UnicodeEncodeError:
        return "".join(char for char in text if _encodable(char))


def _encodable(char: str) -> bool:
    try:
        _encoded(char)
        return True
    except UnicodeEncodeError:
        return False


def name_bytes(text: str) -> int:
    """Length of `text` in bytes on disk: the unit of NAME_MAX."""
    return len(_encoded(text))


def cut_to_bytes(text: str, limit: int) -> str:
    """The longest prefix of `text` that fits in `limit` bytes, cut between characters (never inside one)."""
    size = 0
    for index, char in enumerate(text):
        size += len(_encoded(char))
        if size > limit:
            return text[:index].rstrip(_JOINER)  # the cut fell inside an emoji sequence
    return text


def _split_suffix(name: str) -> tuple[str, str]:
    match = _SUFFIX.search(name)
    return (name[:match.start()], match.group()) if match else (name, "")


def sanitize(name: str, keep_suffix: bool = True) -> str:
    """One path component: reserved characters removed, whitespace collapsed, no leading/trailing dots or
    spaces, at most MAX_NAME_BYTES bytes, cut between characters.

    With `keep_suffix` (file names) an extension such as `.mp3` survives the cut, and a name with nothing
    before its extension (`***.mp3`) becomes "": the caller picks a fallback name. Folder names from the
    path template pass `keep_suffix=False`: they have no extension, only the cut.
    """
    cleaned = " ".join(_RESERVED.sub("", _writable(name)).split()).rstrip(_TRAILING)
    stem, suffix = _split_suffix(cleaned) if keep_suffix else (cleaned, "")
    stem = stem.lstrip(". ")
    if not stem:
        return ""
    budget = MAX_NAME_BYTES - name_bytes(suffix)
    if name_bytes(stem) > budget:
        stem = cut_to_bytes(stem, budget).rstrip(_TRAILING)
    return stem + suffix if stem else ""


def with_counter(name: str, counter: int) -> str:
    """`name` with " (counter)" before its extension, the stem cut so that the whole still fits."""
    stem, suffix = _split_suffix(name)
    tail = f" ({counter}){suffix}"
    return cut_to_bytes(stem, MAX_NAME_BYTES - name_bytes(tail)).rstrip(_TRAILING) + tail


def render_template(template: str, values: dict[str, object]) -> list[str]:
    """Path components for a book; components that end up empty are dropped."""
    components = []
    for part in validate_template(template).split("/"):
        rendered = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1)) or ""), part)
        cleaned = sanitize(rendered, keep_suffix=False)
        if cleaned:
            components.append(cleaned)
    if not components:
        raise PathTemplateError("the path template rendered to nothing for this book")
    return components


UNRESOLVABLE = "cannot be resolved (a symlink loop)"


def resolved(path: Path) -> Path | None:
    """`path` with every symlink followed (a missing tail is fine), or None when that is impossible: a
    symlink loop, such as libtorrent makes of a symlink that points out of its torrent (Python raises
    RuntimeError for it, newer versions OSError)."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):
        return None


def inside(root: Path, candidate: Path) -> bool:
    """True when `candidate` (resolved, symlinks followed) is `root` or below it; a path that cannot be
    resolved is never inside."""
    root_real, candidate_real = resolved(root), resolved(candidate)
    if root_real is None or candidate_real is None:
        return False
    return candidate_real == root_real or root_real in candidate_real.parents


def target_dir(media_dir: Path, template: str, values: dict[str, object]) -> Path:
    target = Path(media_dir).joinpath(*render_template(template, values))
    if not inside(media_dir, target):
        raise UnsafePathError(f"target {target} is outside MEDIA_DIR")
    return target

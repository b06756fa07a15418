"""Target paths: the path template and name sanitising (pure)."""
from __future__ import annotations

import re
from pathlib import Path

TEMPLATE_VARIABLES = {"author", "title", "narrator", "asin", "year"}
DEFAULT_TEMPLATE = "{author}/{title}"
_RESERVED = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
MAX_COMPONENT = 200


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


def sanitize(name: str) -> str:
    """One path component: reserved characters removed, whitespace collapsed, no leading/trailing dots, ≤ 200."""
    cleaned = " ".join(_RESERVED.sub("", name).split()).strip(". ")
    return cleaned[:MAX_COMPONENT].rstrip(". ")


def render_template(template: str, values: dict[str, object]) -> list[str]:
    """Path components for a book; components that end up empty are dropped."""
    components = []
    for part in validate_template(template).split("/"):
        rendered = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1)) or ""), part)
        cleaned = sanitize(rendered)
        if cleaned:
            components.append(cleaned)
    if not components:
        raise PathTemplateError("the path template rendered to nothing for this book")
    return components


def inside(root: Path, candidate: Path) -> bool:
    """True when `candidate` (resolved, symlinks followed) is `root` or below it."""
    root_real, candidate_real = Path(root).resolve(), Path(candidate).resolve()
    return candidate_real == root_real or root_real in candidate_real.parents


def target_dir(media_dir: Path, template: str, values: dict[str, object]) -> Path:
    target = Path(media_dir).joinpath(*render_template(template, values))
    if not inside(media_dir, target):
        raise UnsafePathError(f"target {target} is outside MEDIA_DIR")
    return target

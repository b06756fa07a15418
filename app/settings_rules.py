"""The rules of the settings an admin may change: where each value comes from, how the settings page
describes it, and what may be saved. No I/O but the folder check; storing is app/settings_store.py's.

- Validation is the start's parser (app/config.parse_values, combination_problems), plus the folders:
  DOWNLOAD_DIR and MEDIA_DIR must exist and be readable, MEDIA_DIR writable.
- Secrets are write-only: `describe` says whether one is set, never its value; a blank value keeps it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from app import config
from app.config import ADMIN_SETTING_NAMES, Settings, is_secret, setting_field

FOLDER_NAMES = ("DOWNLOAD_DIR", "MEDIA_DIR")


def source(base: Settings, stored: Mapping[str, str], name: str) -> str:
    """Where a setting's value comes from: "environment", "database" or "default"."""
    if name in base.environment:
        return "environment"
    return "database" if name in stored else "default"


def _text(value: Any) -> str:
    """A setting's value as the text one would write in .env (mappings as `a=b;c=d`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ";".join(f"{pair[0]}={pair[1]}" for pair in value)
    return str(value)


def describe(base: Settings, effective: Settings, stored: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every admin-changeable setting, keyed by its environment variable's name: `{value, source}`, or for
    a secret `{secret: true, set, source}` (its value never leaves the server)."""
    described: dict[str, dict[str, Any]] = {}
    for name in ADMIN_SETTING_NAMES:
        where = source(base, stored, name)
        value = getattr(effective, setting_field(name).name)
        if is_secret(name):
            described[name] = {"secret": True, "set": bool(value), "source": where}
        else:
            written = {"environment": base.environment, "database": stored}.get(where, {})
            described[name] = {"value": written[name].strip() if name in written else _text(value),
                               "source": where}
    return described


# --- validating ------------------------------------------------------------------------------------------

def folder_problem(name: str, path: str, access: Callable[[str, int], bool] = os.access) -> str | None:
    """DOWNLOAD_DIR and MEDIA_DIR must be existing, readable folders; MEDIA_DIR also writable (imports land
    there). None when fine or unset. `access` answers for this process (os.access; tests give a table)."""
    if not path:
        return None
    if not os.path.isabs(path):
        return f"must be an absolute path, got {path!r}"
    if not os.path.isdir(path):
        return f"{path} does not exist or is not a folder"
    if not access(path, os.R_OK | os.X_OK):
        return f"{path} is not readable by this process"
    if name == "MEDIA_DIR" and not access(path, os.W_OK):
        return f"{path} is not writable by this process (imports are written there)"
    return None


def normalize(changes: Mapping[str, Any]) -> tuple[dict[str, str | None], dict[str, str]]:
    """API or form input → {name: text, or None to remove the stored value} and {name: problem}. A blank
    secret is left out (a blank field keeps the stored secret); numbers and booleans become their text."""
    texts: dict[str, str | None] = {}
    problems: dict[str, str] = {}
    for name, value in changes.items():
        if name not in ADMIN_SETTING_NAMES:
            problems[str(name)[:100]] = "not a setting that can be changed here"
        elif value is None:
            texts[name] = None
        elif isinstance(value, bool):
            texts[name] = "true" if value else "false"
        elif isinstance(value, int | float):
            texts[name] = str(value)
        elif not isinstance(value, str):
            problems[name] = "must be a string, a number, true/false or null"
        elif len(value) > 4000:
            problems[name] = "too long (at most 4000 characters)"
        elif not (is_secret(name) and not value.strip()):
            texts[name] = value.strip()
    return texts, problems


def validate(base: Settings, stored: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """{name: message} for every bad value in `changes` (empty: they may be saved), with the start's parser
    and rules across settings applied to the settings as they would be after the save."""
    written = {name: text for name, text in changes.items() if text is not None}
    _, problems = config.parse_values(written)
    for name in FOLDER_NAMES:
        if name in written and name not in problems:
            problem = folder_problem(name, written[name])
            if problem:
                problems[name] = problem
    after = {**{k: v for k, v in stored.items() if k not in changes}, **written}
    values, _ = config.parse_values({k: v for k, v in after.items() if k not in problems and k not in base.environment})
    merged = {**{f: getattr(base, f) for f in Settings.__dataclass_fields__}, **values}
    for name, problem in config.combination_problems(merged).items():
        if name in ADMIN_SETTING_NAMES and name not in problems:
            problems[name] = problem
    return problems

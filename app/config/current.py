"""The settings in force in this process: loaded once, the database's stored values applied over them
(app/settings_store.py), and a running job's own copy (bound_settings)."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import fields, replace

from app.config.loading import combination_problems, load_settings, parse_values, settings_warnings
from app.config.settings import ADMIN_SETTING_NAMES, Settings, setting_field

_current: Settings | None = None  # _base with the database's stored values applied (with_stored)
_base: Settings | None = None     # what the environment (and .env) says
_stored_version: int | None = None  # the settings version _current was built from (None: not read yet)
_bound: ContextVar[Settings | None] = ContextVar("rmab_bound_settings", default=None)


def get_settings() -> Settings:
    """The settings in force here: those bound to the running job (bound_settings), else the process-wide
    ones (loaded on first use; app/settings_store.refresh_settings applies the database's)."""
    bound = _bound.get()
    if bound is not None:
        return bound
    global _current, _base
    if _current is None:
        _current = _base = load_settings()
        _log_settings_warnings(_current)
    return _current


def base_settings() -> Settings:
    """The environment's settings, without the database's values."""
    get_settings()
    return _base or get_settings()


def with_stored(base: Settings, stored: Mapping[str, str]) -> Settings:
    """`base` with the admin's stored values of ADMIN_SETTING_NAMES applied, except those the environment sets
    (defaults < database < environment). A stored value that no longer parses, or breaks a rule across
    settings, is left out with a warning (it was valid when saved; a later release may be stricter)."""

    wanted = {name: value for name, value in stored.items()
              if name in ADMIN_SETTING_NAMES and name not in base.environment}
    values, problems = parse_values(wanted)
    merged = {**{f.name: getattr(base, f.name) for f in fields(Settings)}, **values}
    problems.update({name: problem for name, problem in combination_problems(merged).items() if name in wanted})
    for name, problem in problems.items():
        logging.getLogger("app.config").warning("stored setting %s is not used: %s", name, problem)
        values.pop(setting_field(name).name, None)
    return replace(base, **values) if values else base


def stored_version() -> int | None:
    return _stored_version


def use_stored(stored: Mapping[str, str], version: int) -> Settings:
    """Make the process-wide settings the environment's with `stored` (settings version `version`) applied."""
    global _current, _stored_version
    _current = with_stored(base_settings(), stored)
    _stored_version = version
    return _current


@contextmanager
def bound_settings(settings: Settings) -> Iterator[Settings]:
    """Within the block, get_settings() in this thread answers `settings`: a job keeps the settings it started
    with while the process applies a newer version."""
    token = _bound.set(settings)
    try:
        yield settings
    finally:
        _bound.reset(token)


def _log_settings_warnings(settings: Settings) -> None:

    for warning in settings_warnings(settings):
        logging.getLogger("app.config").warning(warning)


def set_settings(settings: Settings | None) -> None:
    """Replace the process-wide settings (tests, and create_app(settings=...)); the database's stored values
    are applied over them again at the next refresh."""
    global _current, _base, _stored_version
    _current = _base = settings
    _stored_version = None
